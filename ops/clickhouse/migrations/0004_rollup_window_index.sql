-- The sink reads a whole window (one window_start) back from a rollup table when it first
-- touches it after a start or a long pause (streams/rollups.py). window_start is not a prefix of
-- the sort key, so give every rollup table a min-max skip index on it: rows arrive roughly in
-- time order, so a window's rows sit in few granules.
ALTER TABLE rollup_user_minute ADD INDEX IF NOT EXISTS window_start_minmax window_start TYPE minmax GRANULARITY 1;
ALTER TABLE rollup_user_hour ADD INDEX IF NOT EXISTS window_start_minmax window_start TYPE minmax GRANULARITY 1;
ALTER TABLE rollup_user_day ADD INDEX IF NOT EXISTS window_start_minmax window_start TYPE minmax GRANULARITY 1;
ALTER TABLE rollup_model_minute ADD INDEX IF NOT EXISTS window_start_minmax window_start TYPE minmax GRANULARITY 1;
ALTER TABLE rollup_model_hour ADD INDEX IF NOT EXISTS window_start_minmax window_start TYPE minmax GRANULARITY 1;
ALTER TABLE rollup_model_day ADD INDEX IF NOT EXISTS window_start_minmax window_start TYPE minmax GRANULARITY 1;
