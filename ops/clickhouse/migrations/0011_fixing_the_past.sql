-- Fixing the past (docs/fixing-the-past.md): redrive, backfill, corrections and voids, closed
-- periods, and the audit log.
--
-- The ledger keeps every row it was given: an event's own row is adjustment 0; a correction, a
-- void or a re-rating of a closed period adds a row with the next adjustment number, holding the
-- DIFFERENCE (signed: a void is the event's current values negated), so the sum of an event's
-- rows is what it costs now. `events` is what a row adds to the count of events (1 for an
-- event's own row, -1 for a void, 0 for a replacement or a re-rating). `ts` is when the row is
-- booked (the windows it counts in); `occurred_at` is when the event happened: they differ for a
-- row booked in the first open period because the event's month was closed. `entry` says how the
-- row came ('' for the live stream; redrive, backfill, void, replace, rerate) and `audit_id`
-- names the audit_log entry of the change that made it.
-- Counters become signed (Int64) in the ledger and the rollups: an adjustment subtracts. (A new
-- column may join the sorting key only without a DEFAULT expression; UInt32 starts at 0 anyway.)
ALTER TABLE ledger
    ADD COLUMN IF NOT EXISTS adjustment UInt32 AFTER event_id,
    MODIFY ORDER BY (tenant_id, event_id, adjustment);

ALTER TABLE ledger
    ADD COLUMN IF NOT EXISTS events Int8 DEFAULT 1 AFTER list_cost,
    ADD COLUMN IF NOT EXISTS entry LowCardinality(String) DEFAULT '' AFTER adjustment,
    ADD COLUMN IF NOT EXISTS occurred_at DateTime64(3, 'UTC') DEFAULT ts AFTER ts,
    ADD COLUMN IF NOT EXISTS audit_id String DEFAULT '' AFTER entry;

ALTER TABLE ledger
    MODIFY COLUMN input_tokens Int64,
    MODIFY COLUMN output_tokens Int64,
    MODIFY COLUMN cached_input_tokens Int64,
    MODIFY COLUMN cache_write_tokens Int64,
    MODIFY COLUMN images Int64,
    MODIFY COLUMN guardrail_units Int64;

ALTER TABLE rollup_user_minute
    MODIFY COLUMN events Int64,
    MODIFY COLUMN input_tokens Int64,
    MODIFY COLUMN output_tokens Int64,
    MODIFY COLUMN cached_input_tokens Int64,
    MODIFY COLUMN cache_write_tokens Int64,
    MODIFY COLUMN images Int64,
    MODIFY COLUMN guardrail_units Int64;

ALTER TABLE rollup_user_hour
    MODIFY COLUMN events Int64,
    MODIFY COLUMN input_tokens Int64,
    MODIFY COLUMN output_tokens Int64,
    MODIFY COLUMN cached_input_tokens Int64,
    MODIFY COLUMN cache_write_tokens Int64,
    MODIFY COLUMN images Int64,
    MODIFY COLUMN guardrail_units Int64;

ALTER TABLE rollup_user_day
    MODIFY COLUMN events Int64,
    MODIFY COLUMN input_tokens Int64,
    MODIFY COLUMN output_tokens Int64,
    MODIFY COLUMN cached_input_tokens Int64,
    MODIFY COLUMN cache_write_tokens Int64,
    MODIFY COLUMN images Int64,
    MODIFY COLUMN guardrail_units Int64;

ALTER TABLE rollup_user_month
    MODIFY COLUMN events Int64,
    MODIFY COLUMN input_tokens Int64,
    MODIFY COLUMN output_tokens Int64,
    MODIFY COLUMN cached_input_tokens Int64,
    MODIFY COLUMN cache_write_tokens Int64,
    MODIFY COLUMN images Int64,
    MODIFY COLUMN guardrail_units Int64;

ALTER TABLE rollup_model_minute
    MODIFY COLUMN events Int64,
    MODIFY COLUMN input_tokens Int64,
    MODIFY COLUMN output_tokens Int64,
    MODIFY COLUMN cached_input_tokens Int64,
    MODIFY COLUMN cache_write_tokens Int64,
    MODIFY COLUMN images Int64,
    MODIFY COLUMN guardrail_units Int64;

ALTER TABLE rollup_model_hour
    MODIFY COLUMN events Int64,
    MODIFY COLUMN input_tokens Int64,
    MODIFY COLUMN output_tokens Int64,
    MODIFY COLUMN cached_input_tokens Int64,
    MODIFY COLUMN cache_write_tokens Int64,
    MODIFY COLUMN images Int64,
    MODIFY COLUMN guardrail_units Int64;

ALTER TABLE rollup_model_day
    MODIFY COLUMN events Int64,
    MODIFY COLUMN input_tokens Int64,
    MODIFY COLUMN output_tokens Int64,
    MODIFY COLUMN cached_input_tokens Int64,
    MODIFY COLUMN cache_write_tokens Int64,
    MODIFY COLUMN images Int64,
    MODIFY COLUMN guardrail_units Int64;

ALTER TABLE rollup_model_month
    MODIFY COLUMN events Int64,
    MODIFY COLUMN input_tokens Int64,
    MODIFY COLUMN output_tokens Int64,
    MODIFY COLUMN cached_input_tokens Int64,
    MODIFY COLUMN cache_write_tokens Int64,
    MODIFY COLUMN images Int64,
    MODIFY COLUMN guardrail_units Int64;

ALTER TABLE rollup_label_minute
    MODIFY COLUMN events Int64,
    MODIFY COLUMN input_tokens Int64,
    MODIFY COLUMN output_tokens Int64,
    MODIFY COLUMN cached_input_tokens Int64,
    MODIFY COLUMN cache_write_tokens Int64,
    MODIFY COLUMN images Int64,
    MODIFY COLUMN guardrail_units Int64;

ALTER TABLE rollup_label_hour
    MODIFY COLUMN events Int64,
    MODIFY COLUMN input_tokens Int64,
    MODIFY COLUMN output_tokens Int64,
    MODIFY COLUMN cached_input_tokens Int64,
    MODIFY COLUMN cache_write_tokens Int64,
    MODIFY COLUMN images Int64,
    MODIFY COLUMN guardrail_units Int64;

ALTER TABLE rollup_label_day
    MODIFY COLUMN events Int64,
    MODIFY COLUMN input_tokens Int64,
    MODIFY COLUMN output_tokens Int64,
    MODIFY COLUMN cached_input_tokens Int64,
    MODIFY COLUMN cache_write_tokens Int64,
    MODIFY COLUMN images Int64,
    MODIFY COLUMN guardrail_units Int64;

ALTER TABLE rollup_label_month
    MODIFY COLUMN events Int64,
    MODIFY COLUMN input_tokens Int64,
    MODIFY COLUMN output_tokens Int64,
    MODIFY COLUMN cached_input_tokens Int64,
    MODIFY COLUMN cache_write_tokens Int64,
    MODIFY COLUMN images Int64,
    MODIFY COLUMN guardrail_units Int64;

-- A redrive's outcome for each dead letter it sent again (one row per source position of the
-- dead letter: the newest wins). Read beside rejected_events through the dead_letters view.
CREATE TABLE IF NOT EXISTS redrives (
    src_topic        LowCardinality(String),
    src_partition    UInt32,
    src_offset       UInt64,
    src_index        UInt16,
    redriven_at      DateTime64(3, 'UTC'),
    outcome          LowCardinality(String),   -- counted, duplicate, rejected
    detail           String,                   -- the new reason when rejected again
    audit_id         String
) ENGINE = ReplacingMergeTree(redriven_at)
ORDER BY (src_topic, src_partition, src_offset, src_index)
SETTINGS non_replicated_deduplication_window = 1000;

-- Every dead letter with its last redrive, if any.
CREATE VIEW IF NOT EXISTS dead_letters AS
SELECT r.src_topic AS src_topic, r.src_partition AS src_partition, r.src_offset AS src_offset,
       r.src_index AS src_index, r.event_id AS event_id, r.tenant_id AS tenant_id, r.reason AS reason,
       r.payload AS payload, r.rejected_at AS rejected_at,
       d.redriven_at AS redriven_at, d.outcome AS redrive_outcome, d.detail AS redrive_detail,
       d.audit_id AS redrive_audit_id
FROM (SELECT * FROM rejected_events FINAL) AS r
LEFT JOIN (SELECT * FROM redrives FINAL) AS d
    ON r.src_topic = d.src_topic AND r.src_partition = d.src_partition
   AND r.src_offset = d.src_offset AND r.src_index = d.src_index
SETTINGS join_use_nulls = 1;

-- A closed month of a tenant: its digest, a SHA-256 hash chain over the month's ledger rows in
-- the order (event_id, adjustment), with the totals per currency. `period verify` recomputes it.
CREATE TABLE IF NOT EXISTS period_closes (
    tenant_id        String,
    month            String,                   -- YYYY-MM
    closed_at        DateTime64(3, 'UTC'),
    closed_by        String,
    rows             UInt64,
    digest           String,                   -- hex SHA-256, the chain's head
    totals           String,                   -- JSON: {currency: {"cost": "…", "events": n}}
    audit_id         String
) ENGINE = ReplacingMergeTree(closed_at)
ORDER BY (tenant_id, month)
SETTINGS non_replicated_deduplication_window = 1000;

-- Every change made by redrive, backfill, correct, rerate and period close: who, when, what, why.
CREATE TABLE IF NOT EXISTS audit_log (
    audit_id         String,
    at               DateTime64(3, 'UTC'),
    actor            String,
    action           LowCardinality(String),
    reason           String,
    details          String                    -- JSON: what was asked and what was sent
) ENGINE = ReplacingMergeTree
ORDER BY audit_id
SETTINGS non_replicated_deduplication_window = 1000;
