"""The ids a provider payload lacks, for POST /v1/usage/{format}: query parameters named as
`meterstream produce --format`'s options (``tenant``, ``user``, ``event-id``, ``ts``, ``model``,
``region``, ``label=K=V``), or the same as ``Meterstream-Tenant``, ``Meterstream-Event-Id``, …
headers. A parameter given twice with different values, or one this list does not name, is
refused: nothing is guessed."""

from __future__ import annotations

from typing import Any

from adapters import Ids
from schemas.errors import InputRejected

FIELDS = {
    "tenant": "tenant_id",
    "user": "user_id",
    "event-id": "event_id",
    "ts": "ts",
    "model": "model",
    "region": "region",
}
LABEL = "label"


class BadIds(InputRejected):
    """Ids that cannot be used as given; the message says why."""


def header(option: str) -> str:
    return "Meterstream-" + option.title()


def given(query: Any, headers: Any) -> bool:
    """Whether a request names any id (POST /v1/events takes none: events carry theirs)."""
    return bool(query) or any(header(o) in headers for o in (*FIELDS, LABEL))


def request_ids(query: Any, headers: Any) -> Ids:
    """The Ids of a request's query parameters and headers (aiohttp's multidicts)."""
    unknown = sorted(set(query) - set(FIELDS) - {LABEL})
    if unknown:
        raise BadIds(f"unknown query parameter {unknown[0]!r}: one of {', '.join([*FIELDS, LABEL])}")
    values: dict[str, str] = {}
    for option, name in FIELDS.items():
        found = set(query.getall(option, [])) | set(headers.getall(header(option), []))
        if len(found) > 1:
            raise BadIds(f"{option} is given more than once with different values")
        if found:
            values[name] = found.pop()
    return Ids(**values, labels=_labels([*query.getall(LABEL, []), *headers.getall(header(LABEL), [])]))


def _labels(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BadIds(f"label {pair!r}: give KEY=VALUE")
        if out.get(key, value) != value:
            raise BadIds(f"label {key!r} is given more than once with different values")
        out[key] = value
    return out
