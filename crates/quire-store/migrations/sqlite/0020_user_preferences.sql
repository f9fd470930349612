-- What a person's screens remember for them on every device (the layout of a board
-- configuration's panels, …): a JSON value per key.
CREATE TABLE user_preferences (
    user_id    TEXT NOT NULL REFERENCES users (id),
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, key)
);
