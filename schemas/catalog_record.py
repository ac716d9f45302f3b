"""The catalog record: a new pricing catalog version, published on the events topic itself.

``meterstream catalog publish`` writes one such record to every partition of the events topic,
under the header ``content-type: application/vnd.meterstream.catalog+json``, sealed: the header
``meterstream-catalog-seq`` holds the publication's sequence (a decimal integer, the publish
time in microseconds unless given), and ``meterstream-catalog-hmac`` holds HMAC-SHA256, under
the catalog key (a secret the publisher and the raters share), of the topic, the partition, the
sequence and the value. So a producer that may write events may not change prices, nor copy a
published record to another partition or topic, nor write an old one again: a rater refuses a
record whose sequence is not above the one in force on its partition (as TUF refuses metadata
whose version is not above the one trusted). Its value is JSON:
``{"version": "sha256:…", "files": {"<name>.yaml": "<text>", "overlays/<t>.yaml": …}}`` (the
version is the content hash of the files, pricing/bundle.py bundle_hash). The rating worker
prices every event after the record, on that partition, with that version; being in the log,
the switch happens at the same offset for every worker and on every replay."""

from __future__ import annotations

import hmac

import orjson

from schemas.record import CATALOG_HMAC, CATALOG_SEQ, CATALOG_TYPE, CONTENT_TYPE, seal

CATALOG_HEADER = (CONTENT_TYPE, CATALOG_TYPE)
SIGNATURE_HEADER = CATALOG_HMAC
SEQUENCE_HEADER = CATALOG_SEQ
MAX_CATALOG_BYTES = 900_000  # under the producer's and the broker's 1 MB default record limits


def signature(key: bytes, value: bytes, *, topic: str, partition: int, seq: int) -> str:
    """The seal of a catalog record: HMAC-SHA256 of where it goes, its sequence and its value."""
    return seal(b"meterstream-catalog/2", key, value, topic=topic, partition=partition, seq=seq)


def headers(key: bytes, value: bytes, *, topic: str, partition: int, seq: int) -> list[tuple[str, bytes]]:
    """A catalog record's headers: its type, its sequence and its seal."""
    return [
        CATALOG_HEADER,
        (SEQUENCE_HEADER, str(seq).encode()),
        (SIGNATURE_HEADER, signature(key, value, topic=topic, partition=partition, seq=seq).encode()),
    ]


def signed_by(key: bytes, value: bytes, given: str, *, topic: str, partition: int, seq: int) -> bool:
    return hmac.compare_digest(signature(key, value, topic=topic, partition=partition, seq=seq), given)


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
    if (
        not isinstance(version, str)
        or not isinstance(files, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items())
    ):
        raise ValueError("`version` is a string and `files` maps file names to texts")
    return version, files
