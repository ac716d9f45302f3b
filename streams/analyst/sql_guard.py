"""Ad-hoc SQL for analysts, checked by ClickHouse's own parser before anything runs.

A query is accepted only if it is ONE plain SELECT (or a UNION of them) over this database's
tables and views: no other statement, no table functions (file, url, s3, remote, numbers …), no
INTO OUTFILE, no FORMAT, no SETTINGS, no APPLY, no other database (system included), and only
functions from an allow-list. The parser speaks first: `formatQuery` (the text as a bound
parameter, never executed) proves it is one statement and gives its canonical text, and
`EXPLAIN AST` of that text (which parses and does not run it; query parameters are substituted,
an `{x:Identifier}` included) gives the tree checked here:

- tables: every name the tree gives as a table is a table of this database, or an unqualified
  name (a table here, or a WITH name): a TableIdentifier (FROM, JOIN), the right operand of
  IN / NOT IN / GLOBAL IN / nullIn … (`x IN system.one` reads a table), the qualifier of `t.*`;
  and no identifier anywhere starts with another database's name (`system.one.dummy`);
- functions: each call's name is resolved as the engine resolves it (system.functions: exact
  name, or case-insensitive where the engine registers it so, then its alias: `SUM`, `median`,
  `DATE_TRUNC`), and an aggregate's combinators are peeled off (`sumIf`, `uniqExactArrayIf`,
  `countDistinct`, `sumState`/`sumMerge`) down to its base name; the result must be on
  ALLOWED_FUNCTIONS (aggregates and window functions, arithmetic, comparison, logical,
  conditional, NULL handling, rounding, maths, bits, type conversion, dates and times, strings,
  arrays, tuples, a few map basics) with only ALLOWED_COMBINATORS. Everything else is refused,
  `function X() is not allowed`: what reads settings, the host, dictionaries or tables by a
  name given as a string (getSetting, getSettingOrDefault, globalVariable, hasColumnInTable,
  joinGet, dictGet, file …), what reports on the server (version, hostName, currentUser …),
  JSON functions (but JSONExtractString and JSONExtractArrayRaw, which read their string
  argument only: the ledger's line_items), and what runs an aggregate given by name (arrayReduce,
  initializeAggregation).

The accepted query then runs under readonly=1 with limits on time, result, memory and rows and
bytes read (Store.query_readonly, streams/storage/base.py; on the embedded engine also a short
time limit, streams/storage/chdb_store.py).

Besides a SELECT, an analyst may look the schema up (SqlGuard.check), for the tables and views on
READABLE only (the analyst role's grants, streams/storage/access.py; each described in
DESCRIPTIONS), in this database only:

    DESCRIBE [TABLE] t            SHOW COLUMNS FROM t [FROM db]      SHOW CREATE [TABLE|VIEW] t
    SHOW [FULL] TABLES [FROM db] [[NOT] LIKE|ILIKE 'pattern']   (pattern: letters, digits, _ and %)

The parser's tree names the statement (its kind is on an allow-list; SHOW DATABASES, SETTINGS,
GRANTS, USERS, PROCESSLIST … are other kinds, or other text of the same kind) and its canonical
text (formatQuery) must be one of the forms above exactly: no FORMAT, SETTINGS, INTO OUTFILE,
LIMIT, parameter, subquery or table function. The analyst's text is then never run: the guard
builds the statement from the checked name (`DESCRIBE TABLE db.t`, `SHOW TABLES FROM db` …), and
the rows of SHOW TABLES are kept only for READABLE names (Checked.keep). SHOW CREATE shows the
DDL of our own tables and views, which ops/clickhouse/migrations/ publishes already (plus what
the engine adds: its default settings, on a cluster the Distributed table's cluster name): it
holds no data and no secret."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from schemas.errors import InputRejected
from streams.storage import Store, StoreError
from streams.storage.access import ANALYST_OBJECTS, KEYS, WINDOWS

MAX_SQL_BYTES = 64 * 1024
_NODE = re.compile(r"^( *)([\w:]+)(?: (.*?))?(?: \(children \d+\))?$")
_ALIASED = re.compile(r"^(.*?)(?: \(alias .*\))?$")
_WORD = re.compile(r"^\w+$", re.ASCII)

# Functions analysts may call, by the engine's canonical name (an alias resolves to one of them).
ALLOWED_FUNCTIONS = frozenset(
    """
    count sum avg min max any anyLast anyHeavy argMin argMax uniq uniqExact uniqCombined uniqCombined64 uniqHLL12
    groupArray groupUniqArray groupArraySorted groupArrayLast groupConcat groupBitAnd groupBitOr groupBitXor
    quantile quantiles quantileExact quantilesExact quantileExactLow quantileExactHigh quantileTDigest
    quantilesTDigest quantileTiming quantilesTiming quantileDeterministic quantileExactWeighted
    quantilesExactWeighted quantileTDigestWeighted quantileGK quantilesGK
    stddevPop stddevSamp varPop varSamp covarPop covarSamp corr topK topKWeighted sumWithOverflow sumKahan
    sumCount avgWeighted deltaSum simpleLinearRegression histogram boundingRatio skewPop skewSamp kurtPop
    kurtSamp entropy
    rank denseRank percentRank row_number cume_dist ntile lag lead lagInFrame leadInFrame nth_value
    plus minus multiply divide intDiv intDivOrZero intDivOrNull modulo moduloOrZero moduloOrNull
    positiveModulo negate abs gcd lcm divideDecimal multiplyDecimal divideOrNull isFinite isInfinite isNaN
    ifNotFinite max2 min2 midpoint
    equals notEquals less greater lessOrEquals greaterOrEquals isDistinctFrom isNotDistinctFrom
    in notIn globalIn globalNotIn nullIn notNullIn globalNullIn globalNotNullIn
    and or not xor if multiIf greatest least clamp caseWithExpression transform
    coalesce ifNull nullIf isNull isNotNull assumeNotNull toNullable isZeroOrNull
    round roundBankers floor ceil trunc roundDown roundToExp2 roundAge roundDuration
    sqrt cbrt exp exp2 exp10 log log2 log10 log1p pow sign pi e intExp2 intExp10 sin cos tan
    bitAnd bitOr bitXor bitNot bitShiftLeft bitShiftRight bitTest bitTestAll bitTestAny bitCount
    bitRotateLeft bitRotateRight bitSlice
    tuple tupleElement array arrayElement arrayElementOrNull arrayAll arrayAvg arrayCompact arrayConcat
    arrayCount arrayCumSum arrayCumSumNonNegative arrayDifference arrayDistinct arrayEnumerate
    arrayEnumerateUniq arrayExists arrayFill arrayFilter arrayFirst arrayFirstIndex arrayFirstOrNull
    arrayFlatten arrayIntersect arrayJoin arrayLast arrayLastIndex arrayLastOrNull arrayMap arrayMax arrayMin
    arrayPopBack arrayPopFront arrayProduct arrayPushBack arrayPushFront arrayResize arrayReverse
    arrayReverseSort arraySlice arraySort arraySplit arraySum arrayUniq arrayZip arrayFold arrayStringConcat
    arrayUnion arrayExcept countEqual empty notEmpty has hasAll hasAny indexOf length range reverse
    map mapKeys mapValues mapContainsKey mapFromArrays
    JSONExtractString JSONExtractArrayRaw
    concat concatWithSeparator lower upper lowerUTF8 upperUTF8 lengthUTF8 substring substringUTF8 left right
    leftUTF8 rightUTF8 leftPad rightPad leftPadUTF8 rightPadUTF8 trimBoth trimLeft trimRight startsWith
    endsWith startsWithUTF8 endsWithUTF8 repeat format printf replaceAll replaceOne replaceRegexpAll
    replaceRegexpOne position positionCaseInsensitive positionUTF8 positionCaseInsensitiveUTF8 locate like
    ilike notLike notILike match extract extractAll extractGroups countSubstrings countMatches splitByChar
    splitByString splitByRegexp splitByWhitespace splitByNonAlpha toValidUTF8 initcap initcapUTF8 translate
    translateUTF8 substringIndex base64Encode
    CAST accurateCast accurateCastOrNull accurateCastOrDefault toString toFixedString toDecimalString toBool
    toUUID toUUIDOrNull toLowCardinality toTypeName
    toDate toDate32 toDateTime toDateTime32 toDateTime64 toDateOrNull toDateOrZero toDateOrDefault
    toDate32OrNull toDate32OrZero toDate32OrDefault toDateTimeOrNull toDateTimeOrZero toDateTimeOrDefault
    toDateTime64OrNull toDateTime64OrZero toDateTime64OrDefault DATE
    toInt8 toInt16 toInt32 toInt64 toInt128 toInt256 toUInt8 toUInt16 toUInt32 toUInt64 toUInt128 toUInt256
    toFloat32 toFloat64 toDecimal32 toDecimal64 toDecimal128 toDecimal256
    toInterval toIntervalNanosecond toIntervalMicrosecond toIntervalMillisecond toIntervalSecond
    toIntervalMinute toIntervalHour toIntervalDay toIntervalWeek toIntervalMonth toIntervalQuarter
    toIntervalYear
    parseDateTime parseDateTimeOrNull parseDateTimeOrZero parseDateTimeBestEffort parseDateTimeBestEffortOrNull
    parseDateTimeBestEffortOrZero parseDateTime64BestEffort parseDateTime64BestEffortOrNull
    parseDateTime64BestEffortOrZero parseDateTimeBestEffortUS parseDateTime64
    fromUnixTimestamp fromUnixTimestamp64Second fromUnixTimestamp64Milli fromUnixTimestamp64Micro
    fromUnixTimestamp64Nano toUnixTimestamp toUnixTimestamp64Second toUnixTimestamp64Milli
    toUnixTimestamp64Micro toUnixTimestamp64Nano
    now now64 today yesterday toYear toQuarter toMonth toDayOfMonth toDayOfWeek toDayOfYear toHour toMinute
    toSecond toMillisecond toISOWeek toISOYear toWeek toYearWeek toYYYYMM toYYYYMMDD toYYYYMMDDhhmmss
    toStartOfYear toStartOfISOYear toStartOfQuarter toStartOfMonth toStartOfWeek toMonday toStartOfDay
    toStartOfHour toStartOfMinute toStartOfSecond toStartOfFiveMinutes toStartOfTenMinutes
    toStartOfFifteenMinutes toStartOfInterval toStartOfMillisecond toLastDayOfMonth toLastDayOfWeek
    toTimezone toDaysInMonth dateDiff dateTrunc dateName monthName age formatDateTime
    formatDateTimeInJodaSyntax addDays addHours addMinutes addSeconds addMilliseconds addWeeks addMonths
    addQuarters addYears addInterval subtractDays subtractHours subtractMinutes subtractSeconds
    subtractMilliseconds subtractWeeks subtractMonths subtractQuarters subtractYears subtractInterval timeSlot
    toRelativeDayNum toRelativeHourNum toRelativeMinuteNum toRelativeMonthNum toRelativeWeekNum
    toRelativeYearNum makeDate makeDateTime makeDateTime64 timezoneOf
    formatReadableSize formatReadableQuantity formatReadableDecimalSize formatReadableTimeDelta
    finalizeAggregation bar _CAST
""".split()
)  # _CAST: a typed query parameter ({t:DateTime64(3)}) once substituted
# Names the parser gives to syntax, not in system.functions: x -> y, EXISTS (subquery),
# GROUPING(...) of ROLLUP/CUBE, untuple(t).
SYNTAX_FUNCTIONS = frozenset({"lambda", "exists", "grouping", "untuple"})
# Suffixes an aggregate function may carry (sumIf, countDistinct, sumMap, sumState, sumMerge …).
ALLOWED_COMBINATORS = (
    "SimpleState",
    "OrDefault",
    "Distinct",
    "ForEach",
    "ArgMax",
    "ArgMin",
    "OrNull",
    "Merge",
    "State",
    "Array",
    "Map",
    "If",
)
# Functions whose right operand the engine reads as a table when it is a name (`x IN t`).
IN_FUNCTIONS = frozenset(
    {
        "in",
        "notIn",
        "globalIn",
        "globalNotIn",
        "nullIn",
        "notNullIn",
        "globalNullIn",
        "globalNotNullIn",
        "inIgnoreSet",
        "notInIgnoreSet",
        "globalInIgnoreSet",
        "globalNotInIgnoreSet",
        "nullInIgnoreSet",
        "notNullInIgnoreSet",
        "globalNullInIgnoreSet",
        "globalNotNullInIgnoreSet",
    }
)
ALWAYS_OTHER_DATABASES = frozenset({"system", "information_schema"})

# The tables and views analysts may look up with DESCRIBE and SHOW (and `meterstream tables`
# lists): the objects the analyst role may SELECT on a server (streams/storage/access.py).
READABLE = frozenset(ANALYST_OBJECTS)
_WINDOW_TEXT = {"minute": "UTC minute", "hour": "UTC hour", "day": "UTC day", "month": "UTC calendar month"}
_KEY_TEXT = {"user": "user", "model": "model", "label": "label key and value (the keys in MS_ROLLUP_LABELS)"}
# What each object holds, in one line, in the order `meterstream tables` lists them
# (docs/schema.md says more). tests/unit/test_tables.py: every READABLE object has one, and each
# names an object the migrations create.
DESCRIPTIONS: dict[str, str] = {
    **{
        f"spend_by_{k}_{w}": f"spend and usage per {_WINDOW_TEXT[w]}, tenant, {_KEY_TEXT.get(k, k)} and currency, "
        "exact (the newest rollup row of each source partition, added up): for totals over time"
        for k in KEYS
        for w in WINDOWS
    },
    "ledger": "one row per priced event: usage, cost (the tenant's) and list_cost (the catalog's), line items, "
    "labels, catalog, source position; one row per (tenant_id, event_id) once merged: read it with FINAL",
    "rejected_events": "one row per dead-lettered input: its reason, the redacted payload, the source position; "
    "read it with FINAL",
    "alerts": "one row per spend alert fired (budget, period, threshold) and its delivery state; read it with FINAL",
    "redrives": "one row per dead letter sent again by `meterstream redrive`: when, the outcome (counted, duplicate, "
    "rejected) and the audit id; read it with FINAL",
    "dead_letters": "rejected_events with each dead letter's last redrive (redriven_at, redrive_outcome)",
    "period_closes": "one row per closed (tenant, month): the digest of its ledger rows and its totals; read it with FINAL",
    "audit_log": "one row per change to the past (redrive, backfill, correct, rerate, period close): who, when, "
    "what, why; read it with FINAL",
    **{
        f"rollup_{k}_{w}": f"behind spend_by_{k}_{w}: totals per {_WINDOW_TEXT[w]}, tenant, {_KEY_TEXT.get(k, k)}, "
        f"currency and source partition, several versions of a row until merged: query the view instead"
        for k in KEYS
        for w in WINDOWS
    },
}


class RefusedSQL(InputRejected):
    """The query is not one this endpoint runs; the message says why."""


@dataclass
class Node:
    depth: int
    kind: str
    text: str  # what follows the kind: a name, a literal, an alias
    children: list[Node] = field(default_factory=list, repr=False)

    @property
    def name(self) -> str:
        """An identifier's or a function's name, without its alias."""
        m = _ALIASED.match(self.text)
        return m.group(1) if m else self.text


def _parse_tree(lines: list[str]) -> list[Node]:
    """The nodes in order, each with its children (the lines are indented one space a level)."""
    nodes: list[Node] = []
    stack: list[Node] = []
    for line in lines:
        m = _NODE.match(line.rstrip())
        if not m:
            raise RefusedSQL(f"unexpected parser output: {line[:80]!r}")
        node = Node(len(m.group(1)), m.group(2), (m.group(3) or "").strip())
        while stack and stack[-1].depth >= node.depth:
            stack.pop()
        if stack:
            if node.depth != stack[-1].depth + 1:
                raise RefusedSQL(f"unexpected parser output: {line[:80]!r}")
            stack[-1].children.append(node)
        elif nodes:
            raise RefusedSQL("unexpected parser output: more than one tree")
        stack.append(node)
        nodes.append(node)
    return nodes


def _name(node: Node) -> str:
    return node.text.split(" ")[0]


def _check_table(name: str, database: str) -> None:
    """`name` as a table: one of `database` (qualified or not), never another database's."""
    parts = name.split(".")
    if len(parts) > 2 or (len(parts) == 2 and parts[0] != database) or not all(_WORD.match(p) for p in parts):
        raise RefusedSQL(f"only tables of the database {database!r} may be read, not {name}")


def check_tree(nodes: list[Node], database: str) -> set[str]:
    """Raise RefusedSQL unless the AST is one plain SELECT over `database`'s tables (module doc);
    return the names of the functions it calls (check_functions checks them; check_databases
    checks its qualified identifiers)."""
    if not nodes or nodes[0].kind != "SelectWithUnionQuery":
        raise RefusedSQL("only a SELECT query is allowed")
    top = nodes[0].children
    if len(top) != 1 or top[0].kind != "ExpressionList":
        raise RefusedSQL("INTO OUTFILE and FORMAT are not allowed")
    functions: set[str] = set()
    for node in nodes:
        if node.kind == "Set":
            raise RefusedSQL("SETTINGS are not allowed")
        if node.kind == "ColumnsApplyTransformer":  # APPLY(f): the tree does not show f
            raise RefusedSQL("APPLY is not allowed")
        if node.kind == "TableExpression":
            child = node.children[0] if node.children else None
            if child is None or child.kind not in ("TableIdentifier", "Subquery"):
                what = f" {_name(child)}()" if child is not None and child.kind == "Function" else ""
                raise RefusedSQL(f"table functions{what} are not allowed: read this database's tables and views")
        if node.kind == "TableIdentifier":
            _check_table(node.name, database)
        if node.kind == "QualifiedAsterisk":  # t.* or db.t.*
            for child in node.children:
                if child.kind == "Identifier":
                    _check_table(child.name, database)
        if node.kind == "Function":
            name = node.name
            if not _WORD.match(name):
                raise RefusedSQL(f"function {name}() is not allowed")
            functions.add(name)
            if name in IN_FUNCTIONS:
                args = node.children[0].children if node.children and node.children[0].kind == "ExpressionList" else []
                if len(args) == 2 and args[1].kind == "Identifier":
                    _check_table(args[1].name, database)
        if node.kind not in _ALLOWED_KINDS:
            raise RefusedSQL(f"{node.kind} is not allowed in an analyst query")
    return functions


def qualified(nodes: list[Node]) -> set[str]:
    """The qualified identifiers (`a.b`, `a.b.c`)."""
    return {n.name for n in nodes if n.kind == "Identifier" and "." in n.name}


def check_databases(identifiers: set[str], databases: set[str], database: str) -> None:
    """No identifier may start with the name of a database other than `database` (`system.one.dummy`,
    `system.one` as a value): an alias of that name is refused too (name it otherwise)."""
    others = {d.lower() for d in databases | ALWAYS_OTHER_DATABASES if d != database}
    for name in sorted(identifiers):
        first = name.split(".")[0]
        if first != database and first.lower() in others:
            raise RefusedSQL(f"only tables of the database {database!r} may be read, not {name}")


@dataclass(frozen=True)
class _Function:
    name: str  # canonical
    aggregate: bool


class FunctionTable:
    """The engine's functions (system.functions rows: name, alias_to, case_insensitive, is_aggregate)."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.exact = {r["name"]: r for r in rows}
        self.folded = {r["name"].lower(): r for r in rows if r["case_insensitive"]}

    def lookup(self, name: str) -> _Function | None:
        row = self.exact.get(name) or self.folded.get(name.lower())
        if row is None:
            return None
        return _Function(row["alias_to"] or row["name"], bool(row["is_aggregate"]))

    def allowed(self, name: str) -> bool:
        """Whether `name` is an allowed function, or an allowed aggregate with allowed combinators."""
        if name in SYNTAX_FUNCTIONS:
            return True
        found = self.lookup(name)
        if found is not None:
            return found.name in ALLOWED_FUNCTIONS
        return self._with_combinators(name)

    def _with_combinators(self, name: str) -> bool:
        for comb in ALLOWED_COMBINATORS:
            if name.endswith(comb) and len(name) > len(comb):
                base = name[: -len(comb)]
                found = self.lookup(base)
                if found is not None:
                    if found.aggregate and found.name in ALLOWED_FUNCTIONS:
                        return True
                elif self._with_combinators(base):
                    return True
        return False


def candidate_names(name: str) -> set[str]:
    """`name` and every base it may have once combinator suffixes are peeled off."""
    out = {name}
    for comb in ALLOWED_COMBINATORS:
        if name.endswith(comb) and len(name) > len(comb):
            out |= candidate_names(name[: -len(comb)])
    return out


def check_functions(names: set[str], table: FunctionTable) -> None:
    for name in sorted(names):
        if not table.allowed(name):
            raise RefusedSQL(f"function {name}() is not allowed")


# Every AST node a plain SELECT may hold; anything else (a subquery-free INSERT, a SET, a SYSTEM,
# an EXPLAIN, an APPLY, a projection or a window definition we do not know) is refused.
_ALLOWED_KINDS = frozenset(
    {
        "SelectWithUnionQuery",
        "SelectQuery",
        "ExpressionList",
        "Identifier",
        "Asterisk",
        "QualifiedAsterisk",
        "ColumnsListMatcher",
        "ColumnsRegexpMatcher",
        "Literal",
        "Function",
        "Subquery",
        "TablesInSelectQuery",
        "TablesInSelectQueryElement",
        "TableExpression",
        "TableIdentifier",
        "TableJoin",
        "ArrayJoin",
        "OrderByElement",
        "WithElement",
        "QueryParameter",
        "Lambda",
        "WindowDefinition",
        "WindowListElement",
        "SampleRatio",
        "InterpolateElement",
        "IntersectOrExceptQuery",
        "ColumnsTransformerList",
        "ColumnsExceptTransformer",
        "ColumnsReplaceTransformer",
        "ColumnsReplaceTransformer::Replacement",
        "Alias",
    }
)


# The statements, besides a SELECT, that look the schema up (module doc): the parser's kind for
# each, and the canonical text (formatQuery) each must be exactly.
_METADATA_KINDS = frozenset(
    {"DescribeQuery", "ShowTables", "ShowColumns", "ShowCreateTableQuery", "ShowCreateViewQuery"}
)
_DESCRIBE = re.compile(r"DESCRIBE TABLE (?:(\w+)\.)?(\w+)", re.ASCII)
_SHOW_TABLES = re.compile(r"SHOW (FULL )?TABLES(?: FROM (\w+))?(?: ((?:NOT )?I?LIKE) '([\w%]*)')?", re.ASCII)
_SHOW_COLUMNS = re.compile(r"SHOW COLUMNS FROM (\w+)(?: FROM (\w+))?", re.ASCII)
_SHOW_CREATE = re.compile(r"SHOW CREATE (?:TABLE|VIEW) (?:(\w+)\.)?(\w+)", re.ASCII)
_OUTPUT_CLAUSE = re.compile(r"^(?:FORMAT|SETTINGS|INTO OUTFILE)\b", re.M)
METADATA_FORMS = "DESCRIBE TABLE t, SHOW [FULL] TABLES, SHOW COLUMNS FROM t or SHOW CREATE TABLE t"


@dataclass(frozen=True)
class Checked:
    """What runs for an accepted statement: the analyst's SELECT in canonical text with its
    parameters, or the DESCRIBE/SHOW statement the guard built from the checked name."""

    sql: str
    params: Mapping[str, Any] | None = None
    only: frozenset[str] | None = None  # SHOW TABLES: keep the rows of these names only

    def keep(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows the analyst may see of what `sql` returned."""
        if self.only is None:
            return rows
        return [r for r in rows if r.get("name") in self.only]


class SqlGuard:
    """Checks analysts' SQL with one store's parser."""

    def __init__(self, store: Store, database: str, readable: frozenset[str] = READABLE) -> None:
        """`readable`: the tables and views DESCRIBE and SHOW may name (READABLE)."""
        self.store, self.database, self.readable = store, database, readable

    def canonical(self, sql: str, params: Mapping[str, Any] | None = None) -> str:
        """The one SELECT `sql` holds, in ClickHouse's canonical text, or RefusedSQL."""
        text = self._formatted(sql)
        self._check_select(self._tree(text, params), text)
        return text

    def check(self, sql: str, params: Mapping[str, Any] | None = None) -> Checked:
        """What to run for `sql`: one SELECT (as canonical() checks it), or DESCRIBE/SHOW of a
        READABLE table (module doc); else RefusedSQL with the reason."""
        text = self._formatted(sql)
        nodes = self._tree(text, params)
        if nodes and nodes[0].kind in _METADATA_KINDS:
            return self._metadata(nodes, text)
        self._check_select(nodes, text)
        return Checked(text, params)

    def _formatted(self, sql: str) -> str:
        if not isinstance(sql, str) or not sql.strip():
            raise RefusedSQL("give one SELECT query")
        if len(sql.encode()) > MAX_SQL_BYTES:
            raise RefusedSQL(f"the query is over {MAX_SQL_BYTES} bytes")
        try:
            return str(self.store.query("SELECT formatQuery({sql:String}) AS q", {"sql": sql})[0]["q"])
        except StoreError as exc:
            raise RefusedSQL(f"not one valid statement: {_first_line(exc)}") from None

    def _tree(self, text: str, params: Mapping[str, Any] | None) -> list[Node]:
        try:
            lines = [r["explain"] for r in self.store.query("EXPLAIN AST " + text, params)]
        except StoreError as exc:
            raise RefusedSQL(f"cannot parse: {_first_line(exc)}") from None
        return _parse_tree(lines)

    def _check_select(self, nodes: list[Node], text: str) -> None:
        if not nodes or nodes[0].kind != "SelectWithUnionQuery":
            raise RefusedSQL(f"{_head(text)} is not allowed: only a SELECT query, or {METADATA_FORMS}")
        functions = check_tree(nodes, self.database)
        names = qualified(nodes)
        if names:
            databases = {r["name"] for r in self.store.query("SELECT name FROM system.databases")}
            check_databases(names, databases, self.database)
        if functions:
            check_functions(functions, self.functions(functions))

    def _metadata(self, nodes: list[Node], text: str) -> Checked:
        """DESCRIBE or SHOW of a READABLE table or view: the statement the guard builds for it."""
        db = self.database
        if not _WORD.fullmatch(db):
            raise RefusedSQL(f"the database name {db!r} is not a plain identifier")
        kind = nodes[0].kind
        if _OUTPUT_CLAUSE.search(text):
            raise RefusedSQL("INTO OUTFILE, FORMAT and SETTINGS are not allowed")
        if kind == "DescribeQuery":
            inner = nodes[2] if len(nodes) > 2 else None
            if inner is None or inner.kind != "TableIdentifier":
                what = f"the table function {_name(inner)}()" if inner and inner.kind == "Function" else "a query"
                raise RefusedSQL(f"DESCRIBE takes the name of a table or view, not {what}")
            if not (m := _DESCRIBE.fullmatch(text)):
                raise RefusedSQL("give DESCRIBE TABLE name: a plain name (no parameter, no alias)")
            table = self._readable(m.group(1), m.group(2))
            return Checked(f"DESCRIBE TABLE {db}.{table}")
        if kind == "ShowColumns":
            if not (m := _SHOW_COLUMNS.fullmatch(text)):
                raise RefusedSQL("give SHOW COLUMNS FROM name [FROM database]")
            table = self._readable(m.group(2), m.group(1))
            return Checked(f"SHOW COLUMNS FROM {table} FROM {db}")
        if kind in ("ShowCreateTableQuery", "ShowCreateViewQuery"):
            if not (m := _SHOW_CREATE.fullmatch(text)):
                raise RefusedSQL("give SHOW CREATE TABLE name")
            table = self._readable(m.group(1), m.group(2))
            return Checked(f"SHOW CREATE TABLE {db}.{table}")
        m = _SHOW_TABLES.fullmatch(text)  # ShowTables: also SHOW DATABASES, SETTINGS, CLUSTERS …
        if m is None and text.startswith(("SHOW TABLES", "SHOW FULL TABLES")):
            raise RefusedSQL(f"give SHOW [FULL] TABLES [FROM {db}] [[NOT] LIKE|ILIKE 'pattern'], not {_head(text)}")
        if m is None:
            raise RefusedSQL(f"{_head(text)} is not allowed: only a SELECT query, or {METADATA_FORMS}")
        full, other, like, pattern = m.groups()
        if other is not None and other != db:
            raise RefusedSQL(f"only tables of the database {db!r} may be read, not {other}")
        sql = f"SHOW {full or ''}TABLES FROM {db}" + (f" {like} '{pattern}'" if like else "")
        return Checked(sql, only=self.readable)

    def _readable(self, database: str | None, table: str) -> str:
        if database is not None and database != self.database:
            raise RefusedSQL(f"only tables of the database {self.database!r} may be read, not {database}.{table}")
        if table not in self.readable:
            raise RefusedSQL(f"{table} is not a table or view analysts may read (meterstream tables lists them)")
        return table

    def functions(self, names: set[str]) -> FunctionTable:
        """The engine's entries for `names` and their possible bases (names are plain words: checked)."""
        wanted = sorted(set().union(*(candidate_names(n) for n in names)))
        listed = ", ".join(f"'{n}'" for n in wanted if _WORD.match(n))
        folded = ", ".join(f"'{n.lower()}'" for n in wanted if _WORD.match(n))
        rows = self.store.query(
            "SELECT name, alias_to, case_insensitive, is_aggregate FROM system.functions "
            f"WHERE name IN ({listed}) OR (case_insensitive AND lower(name) IN ({folded}))"
        )
        return FunctionTable(rows)


def _head(text: str) -> str:
    """The start of a statement, to name it in a refusal."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= 50 else first[:50] + "…"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]
