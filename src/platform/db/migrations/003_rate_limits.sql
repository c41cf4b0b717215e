-- Counters shared by every web server: rate limits per client address, per user,
-- and failed log-ins per account (fixed windows; expired rows are removed lazily).
CREATE TABLE rate_limits (
  key text PRIMARY KEY,
  count integer NOT NULL,
  window_ends timestamptz NOT NULL,
  last_hit timestamptz NOT NULL
);
CREATE INDEX rate_limits_window_ends ON rate_limits (window_ends);
