-- Per-label windowed rollups (chargeback): for each label key of MS_ROLLUP_LABELS, the totals of
-- every value of that key, kept by the sink exactly like the user and model rollups (0002, 0005):
-- absolute totals per (window, tenant, label key, label value, currency, source partition),
-- versioned by the last source position applied. An event without the key counts under the
-- value '' (so each key's values add up to the tenant's total). Read them through the
-- spend_by_label_* views.

CREATE TABLE IF NOT EXISTS rollup_label_minute (
    window_start        DateTime64(3, 'UTC'),
    tenant_id           String,
    label_key           LowCardinality(String),
    label_value         String,
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
ORDER BY (tenant_id, label_key, label_value, currency, window_start, src_partition)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS rollup_label_hour (
    window_start        DateTime64(3, 'UTC'),
    tenant_id           String,
    label_key           LowCardinality(String),
    label_value         String,
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
ORDER BY (tenant_id, label_key, label_value, currency, window_start, src_partition)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS rollup_label_day (
    window_start        DateTime64(3, 'UTC'),
    tenant_id           String,
    label_key           LowCardinality(String),
    label_value         String,
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
ORDER BY (tenant_id, label_key, label_value, currency, window_start, src_partition)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE TABLE IF NOT EXISTS rollup_label_month (
    window_start        DateTime64(3, 'UTC'),
    tenant_id           String,
    label_key           LowCardinality(String),
    label_value         String,
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
ORDER BY (tenant_id, label_key, label_value, currency, window_start, src_partition)
SETTINGS non_replicated_deduplication_window = 1000;

CREATE VIEW IF NOT EXISTS spend_by_label_minute AS
SELECT window_start, tenant_id, label_key, label_value, currency,
       sum(cost) AS cost, sum(events) AS events,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(cached_input_tokens) AS cached_input_tokens, sum(cache_write_tokens) AS cache_write_tokens,
       sum(images) AS images, sum(guardrail_units) AS guardrail_units
FROM rollup_label_minute FINAL
GROUP BY window_start, tenant_id, label_key, label_value, currency;

CREATE VIEW IF NOT EXISTS spend_by_label_hour AS
SELECT window_start, tenant_id, label_key, label_value, currency,
       sum(cost) AS cost, sum(events) AS events,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(cached_input_tokens) AS cached_input_tokens, sum(cache_write_tokens) AS cache_write_tokens,
       sum(images) AS images, sum(guardrail_units) AS guardrail_units
FROM rollup_label_hour FINAL
GROUP BY window_start, tenant_id, label_key, label_value, currency;

CREATE VIEW IF NOT EXISTS spend_by_label_day AS
SELECT window_start, tenant_id, label_key, label_value, currency,
       sum(cost) AS cost, sum(events) AS events,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(cached_input_tokens) AS cached_input_tokens, sum(cache_write_tokens) AS cache_write_tokens,
       sum(images) AS images, sum(guardrail_units) AS guardrail_units
FROM rollup_label_day FINAL
GROUP BY window_start, tenant_id, label_key, label_value, currency;

CREATE VIEW IF NOT EXISTS spend_by_label_month AS
SELECT window_start, tenant_id, label_key, label_value, currency,
       sum(cost) AS cost, sum(events) AS events,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(cached_input_tokens) AS cached_input_tokens, sum(cache_write_tokens) AS cache_write_tokens,
       sum(images) AS images, sum(guardrail_units) AS guardrail_units
FROM rollup_label_month FINAL
GROUP BY window_start, tenant_id, label_key, label_value, currency;
