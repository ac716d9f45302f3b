"""`--format` for `meterstream produce` and `price`: provider payloads (adapters/) in, billing
events out, with the ids a payload lacks given as options."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO

import click

from adapters import FORMATS, ConversionError, Ids, convert_line
from schemas.errors import InputRejected

FORMAT_CHOICES = ["billing-event", *FORMATS]


def _labels(ctx: Any, param: Any, values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for v in values:
        key, sep, value = v.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{v!r}: give KEY=VALUE")
        out[key] = value
    return out


def format_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--format and the ids a provider payload does not carry."""
    options = [
        click.option(
            "--format",
            "fmt",
            type=click.Choice(FORMAT_CHOICES),
            default="billing-event",
            show_default=True,
            help="What each line of the input is: a billing event, or a provider's payload (docs/events-and-adapters.md: Provider payloads).",
        ),
        click.option("--tenant", "tenant_id", default=None, help="With --format: the events' tenant_id."),
        click.option("--user", "user_id", default=None, help="With --format: the events' user_id."),
        click.option(
            "--event-id", "event_id", default=None, help="With --format: override the payload's id (one payload only)."
        ),
        click.option("--ts", default=None, help="With --format: RFC 3339 time, for payloads without one."),
        click.option(
            "--model", default=None, help="With --format: the model, for payloads that do not name it (Bedrock)."
        ),
        click.option("--region", default=None, help="With --format: the region the call ran in."),
        click.option(
            "--label", "labels", multiple=True, callback=_labels, help="With --format: KEY=VALUE, repeatable."
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


_FLAG = {"tenant_id": "--tenant", "user_id": "--user", "event_id": "--event-id", "labels": "--label"}


def ids_of(opts: dict[str, Any]) -> Ids:
    return Ids(
        tenant_id=opts.get("tenant_id"),
        user_id=opts.get("user_id"),
        event_id=opts.get("event_id"),
        ts=opts.get("ts"),
        model=opts.get("model"),
        region=opts.get("region"),
        labels=opts.get("labels") or {},
    )


def check_ids(fmt: str, opts: dict[str, Any]) -> None:
    """The ids options fill what a provider's payload lacks: given without --format, refused."""
    given = [_FLAG.get(k, f"--{k.replace('_', '-')}") for k, v in opts.items() if v]
    if fmt == "billing-event" and given:
        raise click.UsageError(
            f"{', '.join(given)} fill what a provider's payload lacks: give them with --format FORMAT"
        )


def open_input(source: str) -> tuple[BinaryIO, int | None]:
    """SOURCE (``-``: stdin) to read, and its size when it is a file; one line when it cannot be read."""
    if source == "-":
        return sys.stdin.buffer, None
    try:
        return open(source, "rb"), os.path.getsize(source)  # noqa: SIM115 - the caller reads it to the end
    except OSError as exc:
        raise InputRejected(f"cannot read {source}: {exc.strerror or exc}") from exc


def converted(
    lines: Iterable[bytes], fmt: str, ids: Ids, refused: Callable[[int, bytes, str], None]
) -> Iterator[bytes]:
    """The billing-event lines of each input line (as they are for billing-event); a payload
    that cannot be converted goes to `refused(line number, line, reason)`."""
    for n, line in enumerate(lines, start=1):
        if fmt == "billing-event":
            yield line
            continue
        if not line.strip():
            continue
        try:
            yield from convert_line(fmt, line, ids)
        except ConversionError as exc:
            refused(n, line, str(exc))


class DeadLetterCheck:
    """What the rater will make of the events `meterstream produce` sends: each is rated as it
    goes by, with `pricing.rating.rate` and the worker's catalog, exactly as the rater will
    (nothing is held back: bad events are sent all the same, to reach the dead-letter topic).
    Counts the rejections per reason; the reasons kept are bounded (`keep`), the rest are counted
    as other reasons."""

    def __init__(self, catalog: Any, what: str = "line", keep: int = 10_000) -> None:
        self.catalog, self.what, self.keep = catalog, what, keep
        self.checked = self.rejected = self.other = 0
        self.reasons: dict[str, list[int]] = {}  # reason -> [count, first line (or event) number]

    def passing(self, lines: Iterable[bytes]) -> Iterator[bytes]:
        """``lines`` as they are, each rated on its way; numbered as `what` says (a file's lines,
        blank ones included, or events)."""
        from pricing.rating import Rejection, rate
        from schemas.validate import strip_line

        catalog, reasons = self.catalog, self.reasons
        n = 0
        for line in lines:
            raw = strip_line(line)  # what publish() sends and the rater rates
            if not raw.strip():
                n += self.what == "line"
                yield line
                continue
            n += 1
            self.checked += 1
            result = rate(raw, catalog)  # now: the clock, as the record's timestamp will be for the rater
            if type(result) is Rejection:
                self.rejected += 1
                seen = reasons.get(result.reason)
                if seen is not None:
                    seen[0] += 1
                elif len(reasons) < self.keep:
                    reasons[result.reason] = [1, n]
                else:
                    self.other += 1
            yield line

    def summary(self, top: int = 10) -> list[str]:
        """Lines to print: how many will be dead-lettered, then the `top` reasons by count (each
        with the first line or event it was given for); [] when none will."""
        from schemas.validate import visible

        if not self.rejected:
            return []
        noun = "events" if self.what == "event" else "lines"
        out = [
            f"{self.rejected} of {self.checked} {noun} will be dead-lettered (the rater rejects them, "
            "with these reasons; `meterstream rejects` lists them once rated):"
        ]
        ranked = sorted(self.reasons.items(), key=lambda kv: (-kv[1][0], kv[1][1]))
        for reason, (count, first) in ranked[:top]:
            out.append(f"  {count} x {visible(reason)} (first: {self.what} {first})")
        rest = sum(c for _, (c, _) in ranked[top:]) + self.other
        if rest:
            kinds = max(len(ranked) - top, 0)
            more = f"{kinds} other reasons" if not self.other else f"more than {kinds} other reasons"
            out.append(f"  {rest} more, for {more}")
        return out
