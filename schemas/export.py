"""Write the published JSON Schema: ``python -m schemas.export`` (a test checks it is current)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from schemas.billing_event import SCHEMA_VERSION, BillingEvent

SCHEMA_PATH = Path(__file__).parent / f"billing_event.v{SCHEMA_VERSION}.schema.json"


def render() -> str:
    schema = BillingEvent.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://meterstream.dev/schemas/billing_event.v{SCHEMA_VERSION}.schema.json"
    schema["title"] = f"billing_event v{SCHEMA_VERSION}"
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


if __name__ == "__main__":
    SCHEMA_PATH.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {SCHEMA_PATH}\n")
