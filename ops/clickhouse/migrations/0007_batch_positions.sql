-- Batched records (schemas/batch.py): one Kafka record may carry several events, so a source
-- position is (partition, offset, index). The ledger and rejected_events keep the index of the
-- event in its record (0 for single-event records); rejected_events keeps one row per position.
-- Rollup and alert versions are positions (offset << 13 | index) from here on. (A new column
-- may join the sorting key only without a DEFAULT expression; UInt16 starts at 0 anyway.)
ALTER TABLE ledger ADD COLUMN IF NOT EXISTS src_index UInt16 DEFAULT 0 AFTER src_offset;

ALTER TABLE rejected_events ADD COLUMN IF NOT EXISTS src_index UInt16 AFTER src_offset,
    MODIFY ORDER BY (src_topic, src_partition, src_offset, src_index);
