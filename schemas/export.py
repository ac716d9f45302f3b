"""Write the published JSON Schema: ``python -m schemas.export`` (a test checks it is current)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from schemas import batch
from schemas.billing_correction import CORRECTION_VERSION, BillingCorrection
from schemas.billing_event import SCHEMA_MINOR, SCHEMA_VERSION, BillingEvent

# One file per major version: a minor version is additive (every event of an earlier minor stays
# valid and is priced the same), so it replaces the file's content; its $id and title name it.
SCHEMA_PATH = Path(__file__).parent / f"billing_event.v{SCHEMA_VERSION}.schema.json"
VERSION = f"{SCHEMA_VERSION}.{SCHEMA_MINOR}"
CORRECTION_PATH = Path(__file__).parent / f"billing_correction.v{CORRECTION_VERSION}.schema.json"


def render_correction() -> str:
    """The billing_correction record's JSON Schema (schemas/billing_correction.py)."""
    schema = BillingCorrection.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://meterstream.dev/schemas/billing_correction.v{CORRECTION_VERSION}.schema.json"
    schema["title"] = f"billing_correction v{CORRECTION_VERSION}"
    schema["$comment"] = (
        "A correction of one counted event, by (tenant_id, event_id): action void takes it back whole, "
        "action replace prices `usage` (a billing_event usage object) in its place. `meterstream correct` "
        "takes a JSON Lines file of them. The original ledger row is kept; the pipeline writes a row "
        "holding the difference. correction_id is the idempotency key. See docs/fixing-the-past.md."
    )
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def render() -> str:
    schema = BillingEvent.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://meterstream.dev/schemas/billing_event.v{VERSION}.schema.json"
    schema["title"] = f"billing_event v{VERSION}"
    schema["x-meterstream-version"] = {
        "major": SCHEMA_VERSION,
        "minor": SCHEMA_MINOR,
        "compatibility": (
            "additive within a major version: every event valid under an earlier minor version is "
            "valid under this one and is priced the same"
        ),
        "history": {
            "1.0": "the first published contract",
            "1.1": (
                "usage.cache_write_1h_tokens, audio_input_tokens, audio_output_tokens, image_input_tokens, "
                "image_output_tokens, server_tool_requests {web_search}; service_tier and inference_geo "
                "(allow-lists per provider)"
            ),
        },
    }
    schema["$comment"] = (
        "One Kafka record on the events topic is ONE billing_event (this schema), unless it carries "
        f"the header '{batch.BATCH_HEADER[0]}: {batch.BATCH_HEADER[1].decode()}': then its value is JSON "
        f"Lines, up to {batch.MAX_BATCH_EVENTS} events (one per line, '\\n'-separated), at most "
        f"{batch.MAX_BATCH_BYTES} bytes in all, each line a billing_event on its own. See x-meterstream-batch."
    )
    schema["x-meterstream-batch"] = {
        "header": {"name": batch.BATCH_HEADER[0], "value": batch.BATCH_HEADER[1].decode()},
        "format": "JSON Lines: one billing_event per line, lines separated by \\n (a trailing \\r is ignored)",
        "max_events": batch.MAX_BATCH_EVENTS,
        "max_bytes": batch.MAX_BATCH_BYTES,
        "over_limits": "the whole record is one rejection: nothing in it is priced",
        "position": (
            "each line is validated, priced, deduplicated and dead-lettered by itself, at the source "
            "position (partition, offset, index); index is the line number, 0-based; blank lines are "
            "skipped but keep their number"
        ),
        "position_integer": f"offset << {batch.INDEX_BITS} | index",
        "partitioning": (
            "producers group a batch by target partition with the key tenant_id/user_id and the "
            "same partitioner as single records (Kafka's default: murmur2 of the key); a record "
            "without the header is one event, as before"
        ),
    }
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


if __name__ == "__main__":
    SCHEMA_PATH.write_text(render(), encoding="utf-8")
    CORRECTION_PATH.write_text(render_correction(), encoding="utf-8")
    sys.stdout.write(f"wrote {SCHEMA_PATH} and {CORRECTION_PATH}\n")
