"""The producers' bearer tokens: a file of ``NAME SHA256HEX [tenants=T1,T2]`` lines, one per token.

Only a token's SHA-256 is stored: a token is 256 random bits, so its hash is no easier to reverse
than to guess, and the server never holds a producer's token. `add` makes a token, appends its
hash and returns the token (the CLI prints it once). A name may have several lines: to rotate,
add a new token, move the producer to it, delete the old line. A line with ``tenants=`` limits
its token to those tenants' events; without it the token may write any tenant's. Lines starting
with ``#`` and blank lines are skipped. The file must not be readable by group or others (as the
web token). A running server reads the file again when it changes (`TokensFile`), so a token
added or deleted takes effect within a second; a file that cannot be used then accepts no token
until it is mended. `entries` lists the lines (names, tenants, a hash prefix: never a token);
`revoke` removes a producer's tokens.

The usage API's read tokens (streams/api/) are kept in a file of the same form: the functions
take a `Kind` (default `INGEST`) that names the commands their messages point to."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from schemas.errors import ConfigurationError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
TENANT = re.compile(r"[\x21-\x2b\x2d-\x7e]{1,256}")  # an event's tenant_id (schemas/validate.py), without commas
_LINE = re.compile(r"(\S+) ([0-9a-f]{64})(?: tenants=(\S+))?")
RELOAD_S = 1.0  # how often a server looks at the file for changes
log = logging.getLogger("meterstream.ingest")


class TokenFileError(ConfigurationError):
    """A tokens file that cannot be used, or a name that cannot be added; the message says why."""


@dataclass(frozen=True)
class Kind:
    """Whose tokens a file holds: the command that manages them, what a name is called, the log."""

    command: str = "meterstream ingest token"
    holder: str = "producer"
    log: str = "meterstream.ingest"


INGEST = Kind()


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class Producer:
    """Who a token is: its name, and the tenants it may write events for (None: any)."""

    name: str
    tenants: frozenset[str] | None = None

    def may_write(self, tenant_id: str | None) -> bool:
        return self.tenants is None or tenant_id in self.tenants


class Tokens:
    """The producers a server accepts, by the SHA-256 of their tokens."""

    def __init__(self, entries: list[tuple[Producer, bytes]]) -> None:
        self._entries = entries

    def producer(self, token: str) -> Producer | None:
        """The producer whose token this is, else None. Every hash is compared
        (hmac.compare_digest), whichever matches."""
        given = digest(token)
        found = None
        for producer, stored in self._entries:
            if hmac.compare_digest(given, stored):
                found = producer
        return found


class TokensFile:
    """The tokens of a file as it is now: read again when its times, size, inode or mode change
    (looked at once a second at most). A file that cannot be used (deleted, made readable by
    others, a malformed line) accepts no token until it is mended, and says so in the log."""

    def __init__(self, path: Path, first: Tokens, kind: Kind = INGEST) -> None:
        self.path, self._tokens, self.kind = path, first, kind
        self._log = logging.getLogger(kind.log)
        self._seen, self._looked = self._stamp(), time.monotonic()

    def _stamp(self) -> tuple[int, ...] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino, st.st_mode

    def current(self) -> Tokens:
        now = time.monotonic()
        if now - self._looked < RELOAD_S:
            return self._tokens
        self._looked = now
        stamp = self._stamp()
        if stamp != self._seen:
            self._seen = stamp
            try:
                self._tokens = load(self.path, self.kind)
                self._log.info("tokens file %s read again", self.path)
            except TokenFileError as exc:
                self._tokens = Tokens([])
                self._log.error("tokens file not usable, no token is accepted until it is mended: %s", exc)
        return self._tokens


def _private(path: Path, mode: int) -> None:
    if mode & 0o077:
        raise TokenFileError(f"{path} is readable or writable by others: chmod 600 it")


def load(path: Path, kind: Kind = INGEST) -> Tokens:
    """The tokens file's entries; TokenFileError if it is missing, not private, malformed or empty."""
    try:
        _private(path, path.stat().st_mode)
        text = path.read_text()
    except FileNotFoundError:
        raise TokenFileError(f"no tokens file {path}: create one with `{kind.command} add NAME`") from None
    entries = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        m = _LINE.fullmatch(line.strip())
        if m is None or not NAME.fullmatch(m.group(1)):
            raise TokenFileError(f"{path}, line {n}: expected NAME SHA256HEX (64 lowercase hex digits) [tenants=T1,T2]")
        tenants = None
        if m.group(3) is not None:
            tenants = frozenset(m.group(3).split(","))
            if not all(TENANT.fullmatch(t) for t in tenants):
                raise TokenFileError(f"{path}, line {n}: tenants= takes tenant ids separated by commas")
        entries.append((Producer(m.group(1), tenants), bytes.fromhex(m.group(2))))
    if not entries:
        raise TokenFileError(f"no tokens in {path}: add one with `{kind.command} add NAME`")
    return Tokens(entries)


@dataclass(frozen=True)
class Entry:
    """A line of the tokens file as `ingest token list` shows it: never the token, its hash's
    first 8 hex digits only (enough to tell two of a producer's tokens apart)."""

    name: str
    tenants: frozenset[str] | None
    fingerprint: str


def entries(path: Path, kind: Kind = INGEST) -> list[Entry]:
    """The tokens file's lines, in order (TokenFileError as for `load`)."""
    return [Entry(p.name, p.tenants, h.hex()[:8]) for p, h in load(path, kind)._entries]


def revoke(path: Path, name: str, fingerprint: str | None = None, kind: Kind = INGEST) -> int:
    """Remove `name`'s tokens from the file (only the one whose hash starts with `fingerprint`,
    when given), rewritten whole under a temporary name and moved into place (mode 0600); how
    many were removed. TokenFileError when none matches. A running ingest refuses them within a
    second."""
    load(path, kind)  # private, well formed
    kept, removed = [], 0
    for line in path.read_text().splitlines():
        m = _LINE.fullmatch(line.strip())
        if m is not None and m.group(1) == name and (fingerprint is None or m.group(2).startswith(fingerprint)):
            removed += 1
            continue
        kept.append(line)
    if not removed:
        which = f"{name} with hash {fingerprint}…" if fingerprint else name
        raise TokenFileError(f"no token of {which} in {path} ({kind.command} list)")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write("".join(line + "\n" for line in kept))
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return removed


def add(path: Path, name: str, tenants: list[str] | None = None, kind: Kind = INGEST) -> str:
    """Make a token for `name` (limited to `tenants`' events when given), append its hash to the
    file (created with mode 0600), return it."""
    if not NAME.fullmatch(name):
        raise TokenFileError(f"a {kind.holder} name is 1-64 letters, digits, _ . - (starting with a letter or digit)")
    if tenants is not None and not (tenants and all(TENANT.fullmatch(t) for t in tenants)):
        raise TokenFileError("a tenant is an event's tenant_id: 1-256 printable ASCII characters, no space or comma")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        st = os.fstat(fd)
        _private(path, st.st_mode)
        token = secrets.token_urlsafe(32)
        scope = f" tenants={','.join(sorted(set(tenants)))}" if tenants else ""
        line = f"{name} {digest(token).hex()}{scope}\n".encode()
        if st.st_size and os.pread(fd, 1, st.st_size - 1) != b"\n":
            line = b"\n" + line  # the file's last line was left unterminated
        os.write(fd, line)
    finally:
        os.close(fd)
    return token
