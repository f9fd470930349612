-- Each image's perceptual hash (16 hex digits), so that a generation can refuse a picture
-- that repeats one already kept. NULL for images kept before it was recorded.
ALTER TABLE assets ADD COLUMN phash TEXT;
