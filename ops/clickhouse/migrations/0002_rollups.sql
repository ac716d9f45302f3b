-- Windowed rollups: one table per (users | models) x (minute | hour | day).
-- A row holds the ABSOLUTE totals of one window and key as counted from one source partition,
-- versioned by the last source offset applied: ReplacingMergeTree(version) keeps the newest, so
-- a replayed or retried write changes nothing. Read them through the spend_by_* views below,
-- which take the newest row per partition (FINAL) and add the partitions up.

CREATE TABLE IF NOT EXISTS rollup_user_minute (
    window_start        DateTime64(3, 'UTC'),
    tenant_id           String,
    user_id             String,
    currency            LowCardinality(String),
    src_partition       UInt32,
    cost                Decimal(38, 12),
    events              UInt64,
    input_tokens        UInt64,
    output_tokens       UInt64,
    cached_input_tokens UInt64,
    cache_write_tokens  UInt64,
    images              UInt64,
    guardrail_units     UInt64,
    version             UInt64,
    written_at          DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (tenant_id, user_id, currency, window_start, src_partition)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS rollup_user_hour (
    window_start        DateTime64(3, 'UTC'),
    tenant_id           String,
    user_id             String,
    currency            LowCardinality(String),
    src_partition       UInt32,
    cost                Decimal(38, 12),
    events              UInt64,
    input_tokens        UInt64,
    output_tokens       UInt64,
    cached_input_tokens UInt64,
    cache_write_tokens  UInt64,
    images              UInt64,
    guardrail_units     UInt64,
    version             UInt64,
    written_at          DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (tenant_id, user_id, currency, window_start, src_partition)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS rollup_user_day (
    window_start        DateTime64(3, 'UTC'),
    tenant_id           String,
    user_id             String,
    currency            LowCardinality(String),
    src_partition       UInt32,
    cost                Decimal(38, 12),
    events              UInt64,
    input_tokens        UInt64,
    output_tokens       UInt64,
    cached_input_tokens UInt64,
    cache_write_tokens  UInt64,
    images              UInt64,
    guardrail_units     UInt64,
    version             UInt64,
    written_at          DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (tenant_id, user_id, currency, window_start, src_partition)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS rollup_model_minute (
    window_start        DateTime64(3, 'UTC'),
    tenant_id           String,
    model               LowCardinality(String),
    currency            LowCardinality(String),
    src_partition       UInt32,
    cost                Decimal(38, 12),
    events              UInt64,
    input_tokens        UInt64,
    output_tokens       UInt64,
    cached_input_tokens UInt64,
    cache_write_tokens  UInt64,
    images              UInt64,
    guardrail_units     UInt64,
    version             UInt64,
    written_at          DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (tenant_id, model, currency, window_start, src_partition)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS rollup_model_hour (
    window_start        DateTime64(3, 'UTC'),
    tenant_id           String,
    model               LowCardinality(String),
    currency            LowCardinality(String),
    src_partition       UInt32,
    cost                Decimal(38, 12),
    events              UInt64,
    input_tokens        UInt64,
    output_tokens       UInt64,
    cached_input_tokens UInt64,
    cache_write_tokens  UInt64,
    images              UInt64,
    guardrail_units     UInt64,
    version             UInt64,
    written_at          DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (tenant_id, model, currency, window_start, src_partition)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS rollup_model_day (
    window_start        DateTime64(3, 'UTC'),
    tenant_id           String,
    model               LowCardinality(String),
    currency            LowCardinality(String),
    src_partition       UInt32,
    cost                Decimal(38, 12),
    events              UInt64,
    input_tokens        UInt64,
    output_tokens       UInt64,
    cached_input_tokens UInt64,
    cache_write_tokens  UInt64,
    images              UInt64,
    guardrail_units     UInt64,
    version             UInt64,
    written_at          DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (tenant_id, model, currency, window_start, src_partition)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE VIEW IF NOT EXISTS spend_by_user_minute AS
SELECT window_start, tenant_id, user_id, currency,
       sum(cost) AS cost, sum(events) AS events,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(cached_input_tokens) AS cached_input_tokens, sum(cache_write_tokens) AS cache_write_tokens,
       sum(images) AS images, sum(guardrail_units) AS guardrail_units
FROM rollup_user_minute FINAL
GROUP BY window_start, tenant_id, user_id, currency;

CREATE VIEW IF NOT EXISTS spend_by_user_hour AS
SELECT window_start, tenant_id, user_id, currency,
       sum(cost) AS cost, sum(events) AS events,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(cached_input_tokens) AS cached_input_tokens, sum(cache_write_tokens) AS cache_write_tokens,
       sum(images) AS images, sum(guardrail_units) AS guardrail_units
FROM rollup_user_hour FINAL
GROUP BY window_start, tenant_id, user_id, currency;

CREATE VIEW IF NOT EXISTS spend_by_user_day AS
SELECT window_start, tenant_id, user_id, currency,
       sum(cost) AS cost, sum(events) AS events,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(cached_input_tokens) AS cached_input_tokens, sum(cache_write_tokens) AS cache_write_tokens,
       sum(images) AS images, sum(guardrail_units) AS guardrail_units
FROM rollup_user_day FINAL
GROUP BY window_start, tenant_id, user_id, currency;

CREATE VIEW IF NOT EXISTS spend_by_model_minute AS
SELECT window_start, tenant_id, model, currency,
       sum(cost) AS cost, sum(events) AS events,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(cached_input_tokens) AS cached_input_tokens, sum(cache_write_tokens) AS cache_write_tokens,
       sum(images) AS images, sum(guardrail_units) AS guardrail_units
FROM rollup_model_minute FINAL
GROUP BY window_start, tenant_id, model, currency;

CREATE VIEW IF NOT EXISTS spend_by_model_hour AS
SELECT window_start, tenant_id, model, currency,
       sum(cost) AS cost, sum(events) AS events,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(cached_input_tokens) AS cached_input_tokens, sum(cache_write_tokens) AS cache_write_tokens,
       sum(images) AS images, sum(guardrail_units) AS guardrail_units
FROM rollup_model_hour FINAL
GROUP BY window_start, tenant_id, model, currency;

CREATE VIEW IF NOT EXISTS spend_by_model_day AS
SELECT window_start, tenant_id, model, currency,
       sum(cost) AS cost, sum(events) AS events,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(cached_input_tokens) AS cached_input_tokens, sum(cache_write_tokens) AS cache_write_tokens,
       sum(images) AS images, sum(guardrail_units) AS guardrail_units
FROM rollup_model_day FINAL
GROUP BY window_start, tenant_id, model, currency;
