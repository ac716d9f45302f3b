"""Ad-hoc SQL for analysts, checked by ClickHouse's own parser before anything runs.

A query is accepted only if it is ONE plain SELECT (or a UNION of them) over this database's
tables and views: no other statement, no table functions (file, url, s3, remote, mysql …), no
`file()` or other host-reading functions, no INTO OUTFILE, no FORMAT, no SETTINGS, no other
database (system included). The parser speaks first: `formatQuery` (the text as a bound
parameter, never executed) proves it is one statement and gives its canonical text, and
`EXPLAIN AST` of that text (which parses and does not run it) gives the tree checked here. The
accepted query then runs under readonly=1 with a time and a row limit (Store.query_readonly)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streams.storage import Store, StoreError

MAX_SQL_BYTES = 64 * 1024
# Functions that read the host or reach the network when used as plain functions.
DENIED_FUNCTIONS = frozenset({
    "file", "getsetting", "getmacro", "filesystemavailable", "filesystemcapacity", "filesystemunreserved",
    "getclienthttpheader", "getserversetting", "getmergetreesetting",
})
_NODE = re.compile(r"^( *)(\w+)(?: (.*?))?(?: \(children \d+\))?$")


class RefusedSQL(ValueError):
    """The query is not one this endpoint runs; the message says why."""


@dataclass(frozen=True)
class Node:
    depth: int
    kind: str
    text: str  # what follows the kind: a name, a literal, an alias


def _parse_tree(lines: list[str]) -> list[Node]:
    nodes = []
    for line in lines:
        m = _NODE.match(line.rstrip())
        if not m:
            raise RefusedSQL(f"unexpected parser output: {line[:80]!r}")
        nodes.append(Node(len(m.group(1)), m.group(2), (m.group(3) or "").strip()))
    return nodes


def _name(node: Node) -> str:
    return node.text.split(" ")[0]


def check_tree(nodes: list[Node], database: str) -> None:
    """Raise RefusedSQL unless the AST is one plain SELECT over `database` (see module doc)."""
    if not nodes or nodes[0].kind != "SelectWithUnionQuery":
        raise RefusedSQL("only a SELECT query is allowed")
    top = [n for n in nodes[1:] if n.depth == 1]
    if len(top) != 1 or top[0].kind != "ExpressionList":
        raise RefusedSQL("INTO OUTFILE and FORMAT are not allowed")
    for i, node in enumerate(nodes):
        if node.kind == "Set":
            raise RefusedSQL("SETTINGS are not allowed")
        if node.kind == "Function" and _name(node).lower() in DENIED_FUNCTIONS:
            raise RefusedSQL(f"function {_name(node)}() is not allowed")
        if node.kind == "TableExpression":
            child = nodes[i + 1] if i + 1 < len(nodes) and nodes[i + 1].depth == node.depth + 1 else None
            if child is None or child.kind not in ("TableIdentifier", "Subquery"):
                what = f" {_name(child)}()" if child is not None and child.kind == "Function" else ""
                raise RefusedSQL(f"table functions{what} are not allowed: read this database's tables and views")
        if node.kind == "TableIdentifier":
            parts = _name(node).split(".")
            if len(parts) > 2 or (len(parts) == 2 and parts[0] != database):
                raise RefusedSQL(f"only tables of the database {database!r} may be read, not {_name(node)}")
        if node.kind not in _ALLOWED_KINDS:
            raise RefusedSQL(f"{node.kind} is not allowed in an analyst query")


# Every AST node a plain SELECT may hold; anything else (a subquery-free INSERT, a SET, a SYSTEM,
# an EXPLAIN, a projection or a window definition we do not know) is refused.
_ALLOWED_KINDS = frozenset({
    "SelectWithUnionQuery", "SelectQuery", "ExpressionList", "Identifier", "Asterisk", "QualifiedAsterisk",
    "ColumnsListMatcher", "ColumnsRegexpMatcher", "Literal", "Function", "Subquery", "TablesInSelectQuery",
    "TablesInSelectQueryElement", "TableExpression", "TableIdentifier", "TableJoin", "ArrayJoin",
    "OrderByElement", "WithElement", "QueryParameter", "Lambda", "WindowDefinition", "WindowListElement",
    "SampleRatio", "InterpolateElement", "TTLElement", "IntersectOrExceptQuery", "ColumnsTransformerList",
    "ColumnsExceptTransformer", "ColumnsReplaceTransformer", "ColumnsApplyTransformer", "Alias",
})


class SqlGuard:
    """Checks analysts' SQL with one store's parser."""

    def __init__(self, store: Store, database: str) -> None:
        self.store, self.database = store, database

    def canonical(self, sql: str, params: Mapping[str, Any] | None = None) -> str:
        """The one statement `sql` holds, in ClickHouse's canonical text, or RefusedSQL."""
        if not isinstance(sql, str) or not sql.strip():
            raise RefusedSQL("give one SELECT query")
        if len(sql.encode()) > MAX_SQL_BYTES:
            raise RefusedSQL(f"the query is over {MAX_SQL_BYTES} bytes")
        try:
            text = self.store.query("SELECT formatQuery({sql:String}) AS q", {"sql": sql})[0]["q"]
        except StoreError as exc:
            raise RefusedSQL(f"not one valid statement: {_first_line(exc)}") from None
        try:
            lines = [r["explain"] for r in self.store.query("EXPLAIN AST " + text, params)]
        except StoreError as exc:
            raise RefusedSQL(f"cannot parse: {_first_line(exc)}") from None
        check_tree(_parse_tree(lines), self.database)
        return text


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]
