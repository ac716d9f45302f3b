-- The ledger: one row per priced billing event, the source of truth for every rollup.
-- Idempotent by design: ReplacingMergeTree on (tenant_id, event_id) keeps one row per event
-- (scoped by tenant: one tenant's ids never dedupe another's); `version` orders re-ratings.
-- Money is Decimal(38, 12): the pricing engine carries at most 12 decimal places.
CREATE TABLE IF NOT EXISTS ledger (
    tenant_id        String,
    event_id         String,
    user_id          String,
    provider         LowCardinality(String),
    model            LowCardinality(String),
    region           LowCardinality(String),
    mode             LowCardinality(String),
    ts               DateTime64(3, 'UTC'),
    currency         LowCardinality(String),
    cost             Decimal(38, 12),
    input_tokens         UInt64,
    output_tokens        UInt64,
    cached_input_tokens  UInt64,
    cache_write_tokens   UInt64,
    images               UInt64,
    guardrail_units      UInt64,
    line_items       String,            -- JSON array: dimension, quantity, unit, unit_price, cost (decimal strings)
    usage            String,            -- the event's usage object as received (for re-rating)
    labels           Map(String, String),
    catalog_version  String,
    estimated        Bool,
    src_partition    UInt32,
    src_offset       UInt64,
    version          UInt64,            -- larger wins: a re-rating writes a higher version
    ingested_at      DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant_id, event_id)
SETTINGS non_replicated_deduplication_window = 1000;

-- Every rejected input, with its reason; the payload never holds `text`.
CREATE TABLE IF NOT EXISTS rejected_events (
    src_topic        LowCardinality(String),
    src_partition    UInt32,
    src_offset       UInt64,
    event_id         Nullable(String),
    tenant_id        Nullable(String),
    reason           String,
    payload          String,
    rejected_at      DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
ORDER BY (src_topic, src_partition, src_offset)
SETTINGS non_replicated_deduplication_window = 1000;
