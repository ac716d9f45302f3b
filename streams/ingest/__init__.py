"""The HTTP ingest (`meterstream ingest`): billing events and provider payloads over HTTP, each
judged before it is written, written as `meterstream produce` writes them, and acknowledged only
once Kafka acknowledged them. server.py (endpoints, guard), tokens.py (producers' tokens),
body.py (framing), ids.py (what payloads lack), intake.py (judging), writer.py (Kafka)."""
