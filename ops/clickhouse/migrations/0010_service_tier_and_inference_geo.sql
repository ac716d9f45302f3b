-- billing_event 1.1: the event's service tier (OpenAI flex/priority, Bedrock priority/flex) and
-- inference geography (Anthropic US-only inference) change its price, so each ledger row keeps
-- them as the event named them ('' when it named none: the provider's standard tier and default
-- geography), and re-rating prices the same tier and geography again. Rows written before this
-- migration read ''.
ALTER TABLE ledger
    ADD COLUMN IF NOT EXISTS service_tier LowCardinality(String) DEFAULT '' AFTER mode,
    ADD COLUMN IF NOT EXISTS inference_geo LowCardinality(String) DEFAULT '' AFTER service_tier;
