-- Calendar-month rollups (UTC), kept by the sink like the minute, hour and day ones: analysts'
-- month questions ("top users by spend this month") read one row per user and source partition
-- instead of a row per user and day. Same shape and versioning as 0002.

CREATE TABLE IF NOT EXISTS rollup_user_month (
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
    written_at          DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX window_start_minmax window_start TYPE minmax GRANULARITY 1
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (tenant_id, user_id, currency, window_start, src_partition)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS rollup_model_month (
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
    written_at          DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX window_start_minmax window_start TYPE minmax GRANULARITY 1
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (tenant_id, model, currency, window_start, src_partition)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE VIEW IF NOT EXISTS spend_by_user_month AS
SELECT window_start, tenant_id, user_id, currency,
       sum(cost) AS cost, sum(events) AS events,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(cached_input_tokens) AS cached_input_tokens, sum(cache_write_tokens) AS cache_write_tokens,
       sum(images) AS images, sum(guardrail_units) AS guardrail_units
FROM rollup_user_month FINAL
GROUP BY window_start, tenant_id, user_id, currency;

CREATE VIEW IF NOT EXISTS spend_by_model_month AS
SELECT window_start, tenant_id, model, currency,
       sum(cost) AS cost, sum(events) AS events,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(cached_input_tokens) AS cached_input_tokens, sum(cache_write_tokens) AS cache_write_tokens,
       sum(images) AS images, sum(guardrail_units) AS guardrail_units
FROM rollup_model_month FINAL
GROUP BY window_start, tenant_id, model, currency;
