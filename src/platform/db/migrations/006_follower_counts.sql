-- Follower counts kept on the account, in the same transaction as the follow:
-- the home feed's fan-out asks which authors have more followers than it
-- pushes to (a range of this index), without counting follows.
ALTER TABLE users ADD COLUMN follower_count integer NOT NULL DEFAULT 0 CHECK (follower_count >= 0);
UPDATE users u SET follower_count = (SELECT count(*) FROM follows f WHERE f.followee_id = u.id);
CREATE INDEX users_follower_count ON users (follower_count DESC);
