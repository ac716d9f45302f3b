"""The migrations' single-node DDL, rewritten for a ClickHouse cluster (MS_CLICKHOUSE_CLUSTER).

The .sql files stay the one source of the schema; this module turns each of their statements into
its cluster form, statement by statement:

* ``CREATE TABLE t (...) ENGINE = XMergeTree(args)`` becomes ``t_local``, a ReplicatedXMergeTree
  (Keeper path per shard and table, ``{replica}`` macro, then the original arguments), plus
  ``t``, a Distributed table over ``t_local`` on every node: the sink, the worker's reads, the
  views and analysts all keep using the name ``t``.
* ``CREATE VIEW`` gets ON CLUSTER only: it reads the Distributed tables.
* ``ALTER TABLE t`` goes to ``t_local``; its column commands also to ``t`` (a Distributed table
  has columns, but no indexes, sort key or data to mutate).
* ``DROP TABLE t`` drops ``t`` and ``t_local``; ``DROP VIEW`` gets ON CLUSTER.
* Anything else (a materialized view, a qualified name, another statement) is refused, so a new
  kind of migration statement fails before it runs instead of running as single-node DDL.

Sharding key. ReplacingMergeTree collapses the versions of a row only within one shard's parts
(merges and FINAL run per shard), so every version of a row must land on the same shard: the key
is a function of the table's sort key. Where tenant_id leads the sort key (ledger, rollups) it is
``cityHash64(tenant_id)``: each tenant's ledger rows and rollups live on one shard, so the dedup on
(tenant_id, event_id) and per-tenant FINAL reads stay exact. Elsewhere it is cityHash64 of the
sort key's columns: alerts (alert_key), rejected_events (the source position; its tenant_id may
be NULL) and schema_migrations (version). A later MODIFY ORDER BY may only append new columns, so rows
equal under the new key were equal under the old one and share a shard still.

Parsing: string literals, quoted names and comments are blanked out (same length) first, so the
patterns below see only the structure; edits are then made at the same offsets of the original
text. tests/unit/test_cluster_ddl.py checks every rewritten statement with ClickHouse's parser."""

from __future__ import annotations

import re

from streams.storage.base import StoreError

_CLUSTER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,127}")
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HEAD = re.compile(
    r"\s*(?P<verb>CREATE\s+TABLE|CREATE\s+VIEW|ALTER\s+TABLE|DROP\s+TABLE|DROP\s+VIEW)\s+"
    r"(?P<cond>IF\s+(?:NOT\s+)?EXISTS\s+)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)\b(?!\s*\.)",
    re.I,
)
_ENGINE = re.compile(r"\bENGINE\s*=\s*(?P<engine>[A-Za-z]\w*)", re.I)
_ORDER_BY = re.compile(r"\bORDER\s+BY\s+", re.I)
_CLAUSE = re.compile(r"\s(?:PRIMARY\s+KEY|SAMPLE\s+BY|TTL|SETTINGS|COMMENT)\b", re.I)
_COLUMN_COMMAND = re.compile(r"\s*(?:ADD|DROP|MODIFY|RENAME|COMMENT)\s+COLUMN\b", re.I)
# Insert dedup: the single-node tables keep the ids (hash or insert_deduplication_token) of their
# last 1000 insert blocks. Replicated tables dedup inserts by default, keeping the ids in Keeper per
# shard, bounded by a count and by an age measured from the newest block: the same count (1000) and
# a week, so that in practice the count bounds the window, as on one node.
_NON_REPLICATED_WINDOW = re.compile(r"\bnon_replicated_deduplication_window\s*=\s*(?P<n>\d+)", re.I)
REPLICATED_WINDOW = "replicated_deduplication_window = {n}, replicated_deduplication_window_seconds = 604800"
KEEPER_PATH = "/clickhouse/tables/{{shard}}/{{database}}/{table}"


def check_cluster_name(name: str) -> str:
    """A cluster name as ClickHouse spells it in SQL: letters, digits, '_' and '-' (not first),
    backquoted when it holds a '-'. Anything else is refused."""
    if not isinstance(name, str) or not _CLUSTER_NAME.fullmatch(name):
        raise StoreError(
            f"MS_CLICKHOUSE_CLUSTER is not a cluster name (letters, digits, _ and -, "
            f"starting with a letter or _): {name!r}"
        )
    return name if _PLAIN.fullmatch(name) else f"`{name}`"


def _mask(sql: str) -> str:
    """`sql` with the insides of '…', "…" and `…` and all comments replaced by spaces."""
    out, i, n = list(sql), 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"`":
            j = i + 1
            while True:
                if j >= n:
                    raise StoreError(f"unterminated {c}…{c} in a migration statement: {sql[:80]!r}")
                if sql[j] == "\\":  # an escaped character
                    j += 2
                elif sql[j] == c and sql[j + 1 : j + 2] == c:  # a doubled quote: one quote inside
                    j += 2
                elif sql[j] == c:
                    break
                else:
                    j += 1
            out[i + 1 : j] = " " * (j - i - 1)
            i = j + 1
        elif sql.startswith("--", i) or sql.startswith("/*", i):
            if sql[i] == "-":
                end = sql.find("\n", i)
            else:
                end = sql.find("*/", i + 2)
                end = end + 2 if end >= 0 else -1
            end = n if end < 0 else end
            out[i:end] = " " * (end - i)
            i = end
        else:
            i += 1
    return "".join(out)


def _close(masked: str, i: int) -> int:
    """The index of the ')' matching the '(' at i."""
    depth = 0
    for j in range(i, len(masked)):
        depth += {"(": 1, ")": -1}.get(masked[j], 0)
        if depth == 0:
            return j
    raise StoreError(f"unbalanced parentheses in a migration statement: {masked[:80]!r}")


def _skip_space(text: str, i: int) -> int:
    """The index of the first non-space character at or after i."""
    return i + len(text[i:]) - len(text[i:].lstrip())


def _top_level_parts(masked: str, start: int, end: int) -> list[tuple[int, int]]:
    """Spans of masked[start:end] between commas outside parentheses."""
    spans, depth, s = [], 0, start
    for j in range(start, end):
        depth += {"(": 1, ")": -1}.get(masked[j], 0)
        if masked[j] == "," and depth == 0:
            spans.append((s, j))
            s = j + 1
    return spans + [(s, end)]


def _refuse(stmt: str, why: str) -> StoreError:
    return StoreError(f"cluster DDL: {why}: {' '.join(stmt.split())[:120]!r}")


def _sharding_key(stmt: str, masked: str, start: int) -> str:
    m = _ORDER_BY.search(masked, start)
    if not m:
        raise _refuse(stmt, "a MergeTree table without ORDER BY")
    i = m.end()
    if masked[i : i + 1] == "(":
        j = _close(masked, i)
        cols = [stmt[a:b].strip() for a, b in _top_level_parts(masked, i + 1, j)]
    else:
        end = _CLAUSE.search(masked, i)
        cols = [stmt[i : end.start() if end else len(stmt)].strip()]
    if not all(_PLAIN.fullmatch(c) for c in cols):
        raise _refuse(stmt, "the sort key must be plain columns to shard by it")
    return "cityHash64(tenant_id)" if cols[0] == "tenant_id" else f"cityHash64({', '.join(cols)})"


def _create_table(stmt: str, masked: str, head: re.Match[str], on: str, database: str) -> list[str]:
    name, end = head["name"], head.end("name")
    columns_at = _skip_space(masked, end)
    if masked[columns_at : columns_at + 1] != "(":
        raise _refuse(stmt, "CREATE TABLE needs its column list here")
    columns_end = _close(masked, columns_at)
    m = _ENGINE.search(masked, columns_end)
    engine = m["engine"] if m else ""
    if m is None or not engine.endswith("MergeTree") or engine.startswith("Replicated"):
        raise _refuse(stmt, f"only non-replicated *MergeTree tables are rewritten, not {engine or 'no engine'}")
    local = f"{name}_local"
    edits = [(end, end, f"_local ON CLUSTER {on}")]
    args_end, args = m.end(), ""
    open_at = _skip_space(masked, args_end)
    if masked[open_at : open_at + 1] == "(":
        args_end = _close(masked, open_at) + 1
        args = stmt[open_at + 1 : args_end - 1].strip()
    path = KEEPER_PATH.format(table=local)
    edits.append(
        (m.start("engine"), args_end, f"Replicated{engine}('{path}', '{{replica}}'{', ' + args if args else ''})")
    )
    w = _NON_REPLICATED_WINDOW.search(masked, args_end)
    if w:
        edits.append((w.start(), w.end(), REPLICATED_WINDOW.format(n=w["n"])))
    out = stmt
    for a, b, text in sorted(edits, reverse=True):
        out = out[:a] + text + out[b:]
    cond = "IF NOT EXISTS " if head["cond"] else ""
    distributed = (
        f"CREATE TABLE {cond}{name} ON CLUSTER {on} AS {database}.{local}\n"
        f"ENGINE = Distributed({on}, {database}, {local}, {_sharding_key(stmt, masked, args_end)})"
    )
    return [out, distributed]


def _alter_table(stmt: str, masked: str, head: re.Match[str], on: str) -> list[str]:
    name, end = head["name"], head.end("name")
    out = [f"{stmt[:end]}_local ON CLUSTER {on}{stmt[end:]}"]
    column_commands = [
        stmt[a:b].strip() for a, b in _top_level_parts(masked, end, len(stmt)) if _COLUMN_COMMAND.match(masked[a:b])
    ]
    if column_commands:
        out.append(f"ALTER TABLE {name} ON CLUSTER {on} " + ", ".join(column_commands))
    return out


def _drop(stmt: str, head: re.Match[str], on: str) -> list[str]:
    name, end = head["name"], head.end("name")
    tail = stmt[end:].strip()
    if tail.upper() not in ("", "SYNC"):
        raise _refuse(stmt, "DROP of one plain name (and SYNC) only")
    suffix = f" {tail.upper()}" if tail else ""
    out = [f"{stmt[:end]} ON CLUSTER {on}{suffix}"]
    if head["verb"].split()[-1].upper() == "TABLE":
        out.append(f"DROP TABLE IF EXISTS {name}_local ON CLUSTER {on}{suffix}")
    return out


def cluster_statements(stmt: str, cluster: str, database: str) -> list[str]:
    """The cluster form of one single-node migration statement: one or two statements, in order."""
    on = check_cluster_name(cluster)
    if not _PLAIN.fullmatch(database):
        raise StoreError(f"not a plain identifier: {database!r}")
    masked = _mask(stmt)
    if re.match(r"\s*CREATE\s+(?:OR\s+REPLACE\s+)?MATERIALIZED\s+VIEW\b", masked, re.I):
        raise _refuse(stmt, "materialized views are not rewritten (one would have to read and write the _local tables)")
    head = _HEAD.match(masked)
    if not head:
        raise _refuse(
            stmt,
            "not a statement the cluster rewrite knows (CREATE TABLE/VIEW, ALTER TABLE, "
            "DROP TABLE/VIEW of a plain, unqualified name)",
        )
    verb = " ".join(head["verb"].upper().split())
    if verb == "CREATE TABLE":
        return _create_table(stmt, masked, head, on, database)
    if verb == "CREATE VIEW":
        end = head.end("name")
        return [f"{stmt[:end]} ON CLUSTER {on}{stmt[end:]}"]
    if verb == "ALTER TABLE":
        return _alter_table(stmt, masked, head, on)
    return _drop(stmt, head, on)
