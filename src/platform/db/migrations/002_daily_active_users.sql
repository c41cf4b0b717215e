-- One row per user per day they made an authenticated request: daily active users, exact.
CREATE TABLE daily_active_users (
  day date NOT NULL,
  user_id text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  PRIMARY KEY (day, user_id)
);
CREATE INDEX users_created ON users (created_at);
CREATE INDEX photos_created ON photos (created_at);
CREATE INDEX likes_created ON likes (created_at);
