"""The catalog record: a new pricing catalog version, published on the events topic itself.

``meterstream catalog publish`` writes one such record to every partition of the events topic,
under the header ``content-type: application/vnd.meterstream.catalog+json``. Its value is JSON:
``{"version": "sha256:…", "files": {"<name>.yaml": "<text>", "overlays/<t>.yaml": …}}`` (the
version is the content hash of the files, pricing/catalog.py bundle_hash). The rating worker
prices every event after the record, on that partition, with that version; being in the log,
the switch happens at the same offset for every worker and on every replay."""

from __future__ import annotations

import orjson

CATALOG_HEADER = ("content-type", b"application/vnd.meterstream.catalog+json")
MAX_CATALOG_BYTES = 900_000  # under the producer's and the broker's 1 MB default record limits


def is_catalog(headers: object) -> bool:
    """True when a record's headers (Kafka's list of (key, bytes) pairs) mark a catalog record."""
    if not headers:
        return False
    items = headers.items() if isinstance(headers, dict) else headers
    return any(k.lower() == CATALOG_HEADER[0] and bytes(v) == CATALOG_HEADER[1] for k, v in items)  # type: ignore[union-attr]


def encode(version: str, files: dict[str, str]) -> bytes:
    value = orjson.dumps({"version": version, "files": files})
    if len(value) > MAX_CATALOG_BYTES:
        raise ValueError(f"the catalog is {len(value)} bytes as a record; at most {MAX_CATALOG_BYTES}")
    return value


def decode(value: bytes) -> tuple[str, dict[str, str]]:
    """(version, files) of a catalog record; ValueError with the reason when it is not one."""
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or set(doc) != {"version", "files"}:
        raise ValueError("a catalog record is an object with exactly `version` and `files`")
    version, files = doc["version"], doc["files"]
    if not isinstance(version, str) or not isinstance(files, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise ValueError("`version` is a string and `files` maps file names to texts")
    return version, files
