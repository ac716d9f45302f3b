"""The catalog record: a new pricing catalog version, published on the events topic itself.

``meterstream catalog publish`` writes one such record to every partition of the events topic,
under the header ``content-type: application/vnd.meterstream.catalog+json``, signed: the header
``meterstream-catalog-hmac`` holds HMAC-SHA256 of the value under the catalog key (a secret the
publisher and the raters share; a producer that may write events may not change prices). Its
value is JSON:
``{"version": "sha256:…", "files": {"<name>.yaml": "<text>", "overlays/<t>.yaml": …}}`` (the
version is the content hash of the files, pricing/catalog.py bundle_hash). The rating worker
prices every event after the record, on that partition, with that version; being in the log,
the switch happens at the same offset for every worker and on every replay."""

from __future__ import annotations

import hashlib
import hmac

import orjson

CATALOG_HEADER = ("content-type", b"application/vnd.meterstream.catalog+json")
SIGNATURE_HEADER = "meterstream-catalog-hmac"
MAX_CATALOG_BYTES = 900_000  # under the producer's and the broker's 1 MB default record limits


def signature(key: bytes, value: bytes) -> str:
    return hmac.new(key, value, hashlib.sha256).hexdigest()


def headers(key: bytes, value: bytes) -> list[tuple[str, bytes]]:
    """A catalog record's headers: its type and its signature."""
    return [CATALOG_HEADER, (SIGNATURE_HEADER, signature(key, value).encode())]


def signature_of(headers: object) -> str | None:
    """A catalog record's signature ("" when it has none); None when the record is not one."""
    if not headers:
        return None
    items = list(headers.items() if isinstance(headers, dict) else headers)  # type: ignore[union-attr]
    if not any(k.lower() == CATALOG_HEADER[0] and bytes(v) == CATALOG_HEADER[1] for k, v in items):
        return None
    return next((bytes(v).decode("ascii", "replace") for k, v in items if k.lower() == SIGNATURE_HEADER), "")


def signed_by(key: bytes, value: bytes, given: str) -> bool:
    return hmac.compare_digest(signature(key, value), given)


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
