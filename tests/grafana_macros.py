"""What Grafana and the ClickHouse data source plugin (grafana-clickhouse-datasource) do to a
panel's `rawSql` before ClickHouse sees it, for the tests of ops/grafana/dashboards/ only.

Two steps, as in the plugin:

1. In the browser (src/data/CHDatasource.ts, `applyTemplateVariables`): `$__conditionalAll(cond,
   $var)` becomes `1=1` when the variable is empty or "All", else `cond` (`applyConditionalAll`);
   then Grafana's template service replaces `$var`, `${var}`, `${var:format}` and `[[var]]` with
   the variable's value, formatted by the plugin's `format` (a list becomes `'a','b'`, a single
   value is left as it is) unless the reference names a format (`sqlstring`: each value quoted
   with `'`, a `'` inside doubled; `singlequote`: quoted, `'` escaped with a backslash; `raw`,
   `csv`).
2. In the backend (pkg/macros/macros.go, `Interpolate`, on github.com/grafana/macropro's engine:
   parser.go `Interpolate`, defaults.go `DefaultMacros`): `--` and `/* */` comments are blanked
   outside string literals (a `\\'` inside one does not end it: the plugin's BackslashEscape; its
   backtick and dollar quoting, which the dashboards do not use, are not implemented here); then
   every `$__name` whose name the plugin knows, longest name first,
   optionally followed by `(args)` (commas split arguments outside parentheses and quotes), is
   replaced by its expansion. A name it does not know is left as it is; here that is an error,
   so that a dashboard cannot hide a macro this helper does not implement. The statement macros
   ($__columns, $__rateColumns, $__perSecondColumns, $__increaseColumns, $__lttb: pkg/macros/
   statement.go) are refused too: the dashboards do not use them.

Followed at grafana/clickhouse-datasource commit 1d04063a31fb (after v4.20.0; pkg/macros/macros.go
is the same in v4.20.0 but for backtick and dollar quoting and the statement macros, none of
which the dashboards use), its docs/sources/query-editor.md "Macros" table, and the expected
outputs of its pkg/macros/macros_test.go, which tests/unit/test_grafana_dashboards.py checks
this module against."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

Value = str | Sequence[str]


class MacroError(ValueError):
    """A macro this helper does not expand, or one called with the wrong arguments."""


@dataclass(frozen=True)
class QueryContext:
    """What Grafana sends with a query: the dashboard's time range and the panel's interval."""

    time_from: dt.datetime
    time_to: dt.datetime
    interval: dt.timedelta

    @property
    def interval_ms(self) -> int:
        return int(self.interval / dt.timedelta(milliseconds=1))


# ---- step 1: the browser ---------------------------------------------------------------------

_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)(?::([^}]+))?\}|\[\[(\w+)(?::(\w+))?\]\]")


def _format(value: Value, fmt: str | None) -> str:
    values = [value] if isinstance(value, str) else list(value)
    if fmt is None:  # CHDatasource.format: a list is quoted and joined, a single value left raw
        return value if isinstance(value, str) else "'" + "','".join(values) + "'"
    if fmt == "sqlstring":
        return ",".join("'" + v.replace("'", "''") + "'" for v in values)
    if fmt == "singlequote":
        return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
    if fmt in ("raw", "csv"):
        return ",".join(values)
    raise MacroError(f"variable format {fmt!r} is not implemented here")


def conditional_all(sql: str, variables: Mapping[str, Value]) -> str:
    """`$__conditionalAll(condition, $var)`: `1=1` when $var is empty or All, else the condition."""
    token = "$__conditionalAll("
    while (at := sql.rfind(token)) != -1:
        end = _closing_paren(sql, at + len(token) - 1)
        args = _split_args(sql[at + len(token) : end])
        if len(args) != 2:
            raise MacroError(f"$__conditionalAll takes 2 arguments, not {len(args)}")
        name = re.search(r"(?<=\$\{)\w+(?=\})|(?<=\$)\w+", args[1])
        value = variables.get(name.group(0)) if name else None
        text = value if value is None or isinstance(value, str) else ",".join(value)  # JS toString()
        phrase = "1=1" if text in ("", "$__all") else args[0]
        sql = sql[:at] + phrase + sql[end + 1 :]
    return sql


def template_variables(sql: str, variables: Mapping[str, Value]) -> str:
    """Grafana's template service with the plugin's format function (module doc, step 1)."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        if name.startswith("__"):  # Grafana's own ($__interval …) or a plugin macro: not a variable here
            return m.group(0)
        if name not in variables:
            raise MacroError(f"the query uses ${name}, a variable with no value given")
        return _format(variables[name], m.group(3) or m.group(5))

    return _VARIABLE.sub(sub, conditional_all(sql, variables))


# ---- step 2: the plugin's backend ------------------------------------------------------------


def _to_datetime(t: dt.datetime) -> str:
    return f"toDateTime({int(t.timestamp())})"  # timeToDateTime: t.Unix(), seconds truncated


def _to_datetime64(t: dt.datetime) -> str:
    return f"fromUnixTimestamp64Milli({int(t.timestamp() * 1000)})"  # timeToDateTime64: t.UnixMilli()


def _to_date(t: dt.datetime) -> str:
    return f"toDate('{t.astimezone(dt.UTC):%Y-%m-%d}')"  # Go formats the time in its own zone: UTC here


def _args(name: str, args: list[str], n: int) -> list[str]:
    if len(args) != n:
        raise MacroError(f"$__{name} expected {n} argument(s), received {len(args)}")
    return args


def _seconds(ctx: QueryContext) -> int:
    return int(max(ctx.interval.total_seconds(), 1))


def _go_duration_seconds(text: str) -> int:
    """time.ParseDuration for the forms a $__timeGroup period takes (300ms, 30s, 5m, 1h, 1h30m)."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    if not parts or "".join(a + u for a, u in parts) != text:
        raise MacroError(f"$__timeGroup: invalid interval {text!r}")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return round(sum(float(a) * scale[u] for a, u in parts))


def _time_group(_: QueryContext, args: list[str]) -> str:
    col, period = _args("timeGroup", args, 2)
    secs = _go_duration_seconds(period.strip().strip("'\""))
    if secs <= 0:
        raise MacroError("$__timeGroup: interval must be positive")
    return f"toStartOfInterval(toDateTime({col.strip()}), INTERVAL {secs} second)"


def _format_duration(d: dt.timedelta) -> str:
    """macropro.FormatDuration: the largest whole unit."""
    ms = int(d / dt.timedelta(milliseconds=1))
    if ms == 0:
        return "0s"
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _date_time_filter(ctx: QueryContext, args: list[str]) -> str:
    date_col, time_col = _args("dateTimeFilter", args, 2)
    return (
        f"({date_col} >= {_to_date(ctx.time_from)} AND {date_col} <= {_to_date(ctx.time_to)}) AND "
        f"({time_col} >= {_to_datetime(ctx.time_from)} AND {time_col} <= {_to_datetime(ctx.time_to)})"
    )


Macro = Callable[[QueryContext, list[str]], str]
# pkg/macros/macros.go ClickHouseMacros: macropro's defaults with the plugin's overrides. $__table
# and $__column need the query builder's table and column, which a raw SQL panel has not: refused.
MACROS: dict[str, Macro] = {
    "interval": lambda c, a: _format_duration(c.interval),
    "interval_ms": lambda c, a: str(c.interval_ms),
    "timeFilter": lambda c, a: (
        f"{_args('timeFilter', a, 1)[0]} >= {_to_datetime(c.time_from)} AND {a[0]} <= {_to_datetime(c.time_to)}"
    ),
    "timeFilter_ms": lambda c, a: (
        f"{_args('timeFilter_ms', a, 1)[0]} >= {_to_datetime64(c.time_from)} AND {a[0]} <= {_to_datetime64(c.time_to)}"
    ),
    "timeFrom": lambda c, a: f"{_args('timeFrom', a, 1)[0]} >= {_to_datetime(c.time_from)}",
    "timeTo": lambda c, a: f"{_args('timeTo', a, 1)[0]} <= {_to_datetime(c.time_to)}",
    "timeGroup": _time_group,
    "fromTime": lambda c, a: _to_datetime(c.time_from),
    "toTime": lambda c, a: _to_datetime(c.time_to),
    "fromTime_ms": lambda c, a: _to_datetime64(c.time_from),
    "toTime_ms": lambda c, a: _to_datetime64(c.time_to),
    "dateFilter": lambda c, a: (
        f"{_args('dateFilter', a, 1)[0]} >= {_to_date(c.time_from)} AND {a[0]} <= {_to_date(c.time_to)}"
    ),
    "dateTimeFilter": _date_time_filter,
    "dt": _date_time_filter,
    "timeInterval": lambda c, a: (
        f"toStartOfInterval(toDateTime({_args('timeInterval', a, 1)[0]}), INTERVAL {_seconds(c)} second)"
    ),
    "timeInterval_ms": lambda c, a: (
        f"toStartOfInterval(toDateTime64({_args('timeInterval_ms', a, 1)[0]}, 3), "
        f"INTERVAL {max(c.interval_ms, 1)} millisecond)"
    ),
    "interval_s": lambda c, a: str(_seconds(c)),
}
STATEMENT_MACROS = ("columns", "rateColumns", "perSecondColumns", "increaseColumns", "lttb")


def _string_end(s: str, i: int) -> int:
    """Past the quoted literal at i: macropro's scanStringLiteral ('' and \"\" are escapes) with the
    plugin's BackslashEscape (ClickHouse's \\' inside a literal does not end it)."""
    quote, j = s[i], i + 1
    while j < len(s):
        if s[j] == "\\":
            j += 2
            continue
        if s[j] == quote:
            if j + 1 < len(s) and s[j + 1] == quote:
                j += 2
                continue
            return j + 1
        j += 1
    return j


def strip_comments(sql: str) -> str:
    """macropro StripComments(LineComment | BlockComment): comments become spaces."""
    out, i = [], 0
    while i < len(sql):
        c = sql[i]
        if c in "'\"":
            j = _string_end(sql, i)
            out.append(sql[i:j])
            i = j
        elif sql.startswith("--", i):
            j = i
            while j < len(sql) and sql[j] not in "\r\n":
                j += 1
            out.append(" " * (j - i))
            i = j
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            j = len(sql) if end == -1 else end + 2
            out.append(" " * (j - i))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _closing_paren(s: str, open_at: int) -> int:
    depth, i = 0, open_at
    while i < len(s):
        c = s[i]
        if c in "'\"":
            i = _string_end(s, i)
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _split_args(raw: str) -> list[str]:
    """macropro parseArgs: top-level commas split, each argument trimmed; '' is no argument."""
    raw = raw.strip()
    if not raw:
        return []
    args, depth, start, i = [], 0, 0, 0
    while i < len(raw):
        c = raw[i]
        if c in "'\"":
            i = _string_end(raw, i)
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "," and depth == 0:
            args.append(raw[start:i].strip())
            start = i + 1
        i += 1
    args.append(raw[start:].strip())
    return args


def _is_name_char(c: str) -> bool:
    return c == "_" or c.isascii() and c.isalnum()


def interpolate(sql: str, ctx: QueryContext) -> str:
    """The plugin backend's Interpolate (module doc, step 2)."""
    sql = strip_comments(sql)
    for name in STATEMENT_MACROS:
        if re.search(rf"\$__{name}\b", sql):
            raise MacroError(f"the statement macro $__{name} is not implemented here")
    for name in sorted(MACROS, key=lambda n: (-len(n), n)):  # longest first: interval_ms before interval
        token, out, rest = "$__" + name, [], sql
        while (at := rest.find(token)) != -1:
            after = at + len(token)
            if after < len(rest) and _is_name_char(rest[after]):  # the start of a longer name
                out.append(rest[:after])
                rest = rest[after:]
                continue
            out.append(rest[:at])
            rest = rest[after:]
            raw = ""
            if rest.startswith("(") and (end := _closing_paren(rest, 0)) != -1:
                raw, rest = rest[1:end], rest[end + 1 :]
            out.append(MACROS[name](ctx, _split_args(raw)))
        sql = "".join(out) + rest
    if unknown := re.findall(r"\$__\w+", sql):
        raise MacroError(f"macros this helper does not expand: {sorted(set(unknown))}")
    return sql


def expand(raw_sql: str, ctx: QueryContext, variables: Mapping[str, Value]) -> str:
    """A panel's rawSql as ClickHouse receives it from Grafana (both steps)."""
    return interpolate(template_variables(raw_sql, variables), ctx)
