-- Sharding by user (ports/shards.ts): an edge between two users, or between a
-- user and another's photo, is written on the actor's shard (follows, likes:
-- the source of truth) and copied to the other end's shard (followers,
-- photo_likes), where the reads that need it run: a fan-out asks who follows
-- an author, a like count is kept with its photo. Unsharded, both ends are
-- this one database and both rows are written in one transaction.
CREATE TABLE followers (
  followee_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  follower_id text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (followee_id, follower_id)
);
INSERT INTO followers (followee_id, follower_id, created_at) SELECT followee_id, follower_id, created_at FROM follows;

CREATE TABLE photo_likes (
  photo_id text NOT NULL REFERENCES photos (id) ON DELETE CASCADE,
  user_id text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (photo_id, user_id)
);
INSERT INTO photo_likes (photo_id, user_id, created_at) SELECT photo_id, user_id, created_at FROM likes;

-- The other end may live on another shard: no foreign key can cross to it.
ALTER TABLE follows DROP CONSTRAINT IF EXISTS follows_followee_id_fkey;
ALTER TABLE likes DROP CONSTRAINT IF EXISTS likes_photo_id_fkey;
-- A user's likes, by photo (the feed asks which of a page's photos the viewer liked).
CREATE INDEX likes_user_photo ON likes (user_id, photo_id);

-- Edges whose copy on the other end's shard is not known to be written yet:
-- a row is added in the transaction that changes the edge, and removed once
-- the copy matches it. A sweeper finishes what a crash or an unreachable
-- shard left.
CREATE TABLE edge_outbox (
  id bigserial PRIMARY KEY,
  kind text NOT NULL CHECK (kind IN ('follow', 'like')),
  -- follow: the follower and the followee; like: the user and the photo.
  source_id text NOT NULL,
  target_id text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
