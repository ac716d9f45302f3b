"""A read-only analyst role (and, when its password is set, a user) on a ClickHouse server.

``meterstream migrate`` applies these statements on a server after the migrations, every time
(each is idempotent; a changed password takes effect). They are generated, not a migration file:
the user's password must never be part of a stored migration or its checksum. The password is
not sent either: the statement carries SHA-256(password + salt) with a fresh random salt
(``IDENTIFIED WITH sha256_hash BY … SALT …``), which is what ClickHouse checks a login against.

What the role may do: SELECT on the objects analysts query, nothing else: no INSERT, no ALTER,
no table functions (they need CREATE TEMPORARY TABLE and source grants, which it does not have).
The spend_by_* views are plain views, which ClickHouse runs with SQL SECURITY INVOKER by default:
the reader needs SELECT on the rollup_* tables they read as well, so those are granted too. A
settings profile with ``readonly = 1`` keeps the user's sessions read-only whatever it is granted.

chDB (the embedded engine) has no access control: there, nothing is applied."""

from __future__ import annotations

import hashlib
import re
import secrets

from pydantic import SecretStr

from streams.storage.base import Store, StoreError
from streams.storage.chdb_store import check_identifier

ANALYST_ROLE = "meterstream_analyst"
ANALYST_PROFILE = "meterstream_analyst_readonly"
WINDOWS = ("minute", "hour", "day", "month")
KEYS = ("user", "model", "label")

# Everything analysts query, and the tables the views read (SQL SECURITY INVOKER).
ANALYST_VIEWS = tuple(f"spend_by_{k}_{w}" for k in KEYS for w in WINDOWS) + ("dead_letters",)
ANALYST_TABLES = ("ledger", "rejected_events", "alerts", "redrives", "period_closes", "audit_log") + tuple(
    f"rollup_{k}_{w}" for k in KEYS for w in WINDOWS
)
ANALYST_OBJECTS = ANALYST_TABLES + ANALYST_VIEWS
_HEX = re.compile(r"[0-9a-fA-F]{32,}")


def password_hash(password: str, salt: str) -> str:
    """What ClickHouse stores for sha256_hash: hex SHA-256 of the password followed by the salt."""
    return hashlib.sha256((password + salt).encode()).hexdigest()


def analyst_statements(
    database: str, user: str | None = None, password: SecretStr | None = None, *, salt: str | None = None
) -> list[str]:
    """The DDL for the role (always) and the user (when a password is given), in order."""
    db = check_identifier(database)
    stmts = [
        f"CREATE SETTINGS PROFILE IF NOT EXISTS {ANALYST_PROFILE} SETTINGS readonly = 1",
        f"ALTER SETTINGS PROFILE {ANALYST_PROFILE} SETTINGS readonly = 1",
        f"CREATE ROLE IF NOT EXISTS {ANALYST_ROLE}",
        f"ALTER ROLE {ANALYST_ROLE} SETTINGS PROFILE '{ANALYST_PROFILE}'",
        f"REVOKE ALL ON {db}.* FROM {ANALYST_ROLE}",  # whatever an older version granted here
        *(f"GRANT SELECT ON {db}.{name} TO {ANALYST_ROLE}" for name in ANALYST_OBJECTS),
    ]
    if password is not None and password.get_secret_value():
        name = check_identifier(user or ANALYST_ROLE)
        salt = salt or secrets.token_hex(16)
        ident = f"IDENTIFIED WITH sha256_hash BY '{password_hash(password.get_secret_value(), salt)}' SALT '{salt}'"
        stmts += [
            f"CREATE USER IF NOT EXISTS {name} {ident}",
            f"ALTER USER {name} {ident}",  # the password of now, also for a user created before
            f"GRANT {ANALYST_ROLE} TO {name}",
            f"ALTER USER {name} DEFAULT ROLE {ANALYST_ROLE} DEFAULT DATABASE {db} SETTINGS PROFILE '{ANALYST_PROFILE}'",
        ]
    return stmts


def statement_kind(stmt: str) -> str:
    """The first words of a statement, enough to say which failed (never its hash or salt)."""
    return " ".join(stmt.split()[:5])


def apply_analyst_access(store: Store, database: str, user: str | None, password: SecretStr | None) -> str:
    """Create the role (and user) on a server; on chDB skip. Returns a line saying what was done
    (never the password or its hash)."""
    if store.backend != "server":
        skipped = "analyst role: skipped, the embedded engine (chDB) has no access control"
        if password is not None:
            skipped += " (MS_CLICKHOUSE_ANALYST_PASSWORD is ignored)"
        return skipped
    stmts = analyst_statements(database, user, password)
    for stmt in stmts:
        try:
            store.command(stmt)
        except StoreError as exc:
            text = _HEX.sub("[hidden]", str(exc))  # the hash and salt, should the server quote them
            raise StoreError(
                f"analyst role: {statement_kind(stmt)} … failed (the migrating user needs "
                f"access management, e.g. CLICKHOUSE_DEFAULT_ACCESS_MANAGEMENT=1): {text}"
            ) from None
    made = f"role {ANALYST_ROLE} (SELECT on {len(ANALYST_OBJECTS)} objects of {database})"
    if password is not None and password.get_secret_value():
        made += f", user {user or ANALYST_ROLE}"
    return f"analyst role: {made}"
