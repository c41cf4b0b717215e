-- Like counts kept on the photo, in the same transaction as the like: a read
-- of a page of photos no longer counts rows in likes.
ALTER TABLE photos ADD COLUMN like_count integer NOT NULL DEFAULT 0 CHECK (like_count >= 0);
UPDATE photos p SET like_count = (SELECT count(*) FROM likes l WHERE l.photo_id = p.id);
