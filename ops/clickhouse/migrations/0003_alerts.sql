-- Spend alerts: the outbox of alert delivery. One alert per (budget, period, threshold): the
-- alert_key. Each delivery step writes a newer version of the row (ReplacingMergeTree).
CREATE TABLE IF NOT EXISTS alerts (
    alert_key        String,
    budget_id        String,
    tenant_id        String,
    user_id          String,
    model            String,
    period_kind      LowCardinality(String),
    period           String,
    threshold        Decimal(9, 4),
    spend            Decimal(38, 12),
    amount           Decimal(38, 12),
    currency         LowCardinality(String),
    event_id         String,
    created_at       DateTime64(3, 'UTC'),
    kafka_delivered  Bool,
    webhook_status   String,
    version          UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY alert_key
SETTINGS non_replicated_deduplication_window = 1000;
