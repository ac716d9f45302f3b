"""The producers' bearer tokens: a file of ``NAME SHA256HEX`` lines, one per token.

Only a token's SHA-256 is stored: a token is 256 random bits, so its hash is no easier to reverse
than to guess, and the server never holds a producer's token. `add` makes a token, appends its
hash and returns the token (the CLI prints it once). A name may have several lines: to rotate,
add a new token, move the producer to it, delete the old line. Lines starting with ``#`` and blank
lines are skipped. The file must not be readable by group or others (as the web token)."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_LINE = re.compile(r"(\S+) ([0-9a-f]{64})")


class TokenFileError(RuntimeError):
    """A tokens file that cannot be used, or a name that cannot be added; the message says why."""


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Tokens:
    """The producers a server accepts, by the SHA-256 of their tokens."""

    def __init__(self, entries: list[tuple[str, bytes]]) -> None:
        self._entries = entries

    def producer(self, token: str) -> str | None:
        """The name whose token this is, else None. Every hash is compared (hmac.compare_digest),
        whichever matches."""
        given = digest(token)
        found = None
        for name, stored in self._entries:
            if hmac.compare_digest(given, stored):
                found = name
        return found


def _private(path: Path, mode: int) -> None:
    if mode & 0o077:
        raise TokenFileError(f"{path} is readable or writable by others: chmod 600 it")


def load(path: Path) -> Tokens:
    """The tokens file's entries; TokenFileError if it is missing, not private, malformed or empty."""
    try:
        _private(path, path.stat().st_mode)
        text = path.read_text()
    except FileNotFoundError:
        raise TokenFileError(f"no tokens file {path}: create one with `meterstream ingest token add NAME`") from None
    entries = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        m = _LINE.fullmatch(line.strip())
        if m is None or not NAME.fullmatch(m.group(1)):
            raise TokenFileError(f"{path}, line {n}: expected NAME SHA256HEX (64 lowercase hex digits)")
        entries.append((m.group(1), bytes.fromhex(m.group(2))))
    if not entries:
        raise TokenFileError(f"no tokens in {path}: add one with `meterstream ingest token add NAME`")
    return Tokens(entries)


def add(path: Path, name: str) -> str:
    """Make a token for `name`, append its hash to the file (created with mode 0600), return it."""
    if not NAME.fullmatch(name):
        raise TokenFileError("a producer name is 1-64 letters, digits, _ . - (starting with a letter or digit)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        st = os.fstat(fd)
        _private(path, st.st_mode)
        token = secrets.token_urlsafe(32)
        line = f"{name} {digest(token).hex()}\n".encode()
        if st.st_size and os.pread(fd, 1, st.st_size - 1) != b"\n":
            line = b"\n" + line  # the file's last line was left unterminated
        os.write(fd, line)
    finally:
        os.close(fd)
    return token
