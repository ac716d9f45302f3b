"""Offline, hash-verified token counting.

Vocabularies come only from data installed with the ``quicktok-v1`` package
(``quicktok/data/<name>.vocab``). Nothing is ever downloaded: ``tiktoken`` is
used only as the BPE engine, via ``tiktoken.Encoding`` built here, never via
``tiktoken.get_encoding`` (which would fetch the vocabulary over the network).

A ``.vocab`` file is little-endian: u32 entry count, then per entry a u16
length, the token bytes and a u32 rank. It is converted to tiktoken's text
format (one ``base64(token) rank`` line per token, in rank order), and the
sha256 of that text must equal the hash pinned below before it is used:

- cl100k_base, o200k_base: the ``expected_hash`` in tiktoken 0.14's
  ``tiktoken_ext/openai_public.py``;
- llama3: Meta's Llama 3 ``tokenizer.model`` (a file in the same format);
- qwen3: Qwen's published ``qwen.tiktoken`` (Qwen2.5 and Qwen3 use the same BPE).

The verified file is cached in ``$MS_TIKTOKEN_CACHE`` (default
``~/.cache/meterstream/tiktoken``), written atomically (temp file +
``os.replace``), and re-verified on every load. A cached file whose hash does
not match is reported, not used and not silently replaced.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import os
import struct
import tempfile
import threading
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import tiktoken

from schemas.errors import ConfigurationError

__all__ = [
    "ENCODINGS",
    "VocabularyError",
    "cache_dir",
    "count_tokens",
    "get_encoding",
    "vocabulary_file",
]

CACHE_ENV = "MS_TIKTOKEN_CACHE"
_DEFAULT_CACHE = Path("~/.cache/meterstream/tiktoken")

# Same strings as tiktoken_ext/openai_public.py (tiktoken 0.14); a test compares them.
_CL100K_PAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_O200K_PAT = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
# Meta's llama3/tokenizer.py pattern.
_LLAMA3_PAT = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
# Qwen's pattern: like llama3 but one digit per piece.
_QWEN_PAT = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

_LLAMA3_SPECIAL_NAMES = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|reserved_special_token_2|>",
    "<|reserved_special_token_3|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|reserved_special_token_4|>",
    "<|eot_id|>",
] + [f"<|reserved_special_token_{i}|>" for i in range(5, 251)]

_QWEN3_SPECIAL_NAMES = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
]


@dataclass(frozen=True)
class _Spec:
    source: str  # stem of the quicktok data file
    sha256: str  # of the tiktoken-format text
    n_ranks: int
    pat_str: str
    special_tokens: dict[str, int]
    nfc: bool = False  # the model's own tokenizer NFC-normalises input first


_SPECS: dict[str, _Spec] = {
    "cl100k_base": _Spec(
        source="cl100k",
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        n_ranks=100256,
        pat_str=_CL100K_PAT,
        special_tokens={
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    ),
    "o200k_base": _Spec(
        source="o200k",
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        n_ranks=199998,
        pat_str=_O200K_PAT,
        special_tokens={"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    ),
    "llama3": _Spec(
        source="llama3",
        sha256="82e9d31979e92ab929cd544440f129d9ecd797b69e327f80f17e1c50d5551b55",
        n_ranks=128000,
        pat_str=_LLAMA3_PAT,
        special_tokens={t: 128000 + i for i, t in enumerate(_LLAMA3_SPECIAL_NAMES)},
    ),
    "qwen3": _Spec(
        source="qwen3",
        sha256="b2b1b8dfb5cc5f024bafc373121c6aba3f66f9a5a0269e243470a1de16a33186",
        n_ranks=151643,
        pat_str=_QWEN_PAT,
        special_tokens={t: 151643 + i for i, t in enumerate(_QWEN3_SPECIAL_NAMES)},
        nfc=True,
    ),
}

ENCODINGS: tuple[str, ...] = tuple(_SPECS)

_build_lock = threading.Lock()


class VocabularyError(ConfigurationError):
    """A vocabulary is missing, malformed or fails its sha256 check."""


def cache_dir() -> Path:
    """Directory holding the verified ``<name>.tiktoken`` files."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else _DEFAULT_CACHE.expanduser()


def _spec(name: str) -> _Spec:
    try:
        return _SPECS[name]
    except KeyError:
        raise ValueError(f"unknown encoding {name!r}; supported: {', '.join(ENCODINGS)}") from None


def _quicktok_data_dir() -> Path:
    # find_spec locates the installed package without importing it.
    found = importlib.util.find_spec("quicktok")
    if found is None or not found.submodule_search_locations:
        raise VocabularyError("package quicktok-v1 is not installed; it carries the vocabularies")
    return Path(list(found.submodule_search_locations)[0]) / "data"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def quicktok_vocab_to_tiktoken(raw: bytes) -> bytes:
    """Convert quicktok's binary ``.vocab`` to tiktoken text. Ranks must be 0..n-1 in order."""
    try:
        (count,) = struct.unpack_from("<I", raw, 0)
        offset = 4
        lines = []
        for expected_rank in range(count):
            (length,) = struct.unpack_from("<H", raw, offset)
            offset += 2
            token = raw[offset : offset + length]
            offset += length
            (rank,) = struct.unpack_from("<I", raw, offset)
            offset += 4
            if len(token) != length or length == 0 or rank != expected_rank:
                raise VocabularyError(f"malformed vocab entry at rank {expected_rank}")
            lines.append(base64.b64encode(token) + b" " + str(rank).encode() + b"\n")
    except struct.error as exc:
        raise VocabularyError("truncated vocab file") from exc
    if offset != len(raw):
        raise VocabularyError(f"{len(raw) - offset} trailing bytes after {count} vocab entries")
    return b"".join(lines)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _verified_bytes(name: str) -> bytes:
    """The verified tiktoken-format vocabulary, built into the cache if absent."""
    spec = _spec(name)
    path = cache_dir() / f"{name}.tiktoken"
    with _build_lock:
        if path.exists():
            data = path.read_bytes()
            actual = _sha256(data)
            if actual != spec.sha256:
                raise VocabularyError(
                    f"sha256 mismatch for cached vocabulary {path}: expected {spec.sha256}, "
                    f"got {actual}; delete the file to rebuild it from the installed package"
                )
            return data
        source = _quicktok_data_dir() / f"{spec.source}.vocab"
        try:
            raw = source.read_bytes()
        except OSError as exc:
            raise VocabularyError(f"cannot read vocabulary source {source}: {exc}") from exc
        data = quicktok_vocab_to_tiktoken(raw)
        actual = _sha256(data)
        if actual != spec.sha256:
            raise VocabularyError(
                f"sha256 mismatch for {name} converted from {source}: expected {spec.sha256}, "
                f"got {actual}; the installed quicktok-v1 data is not the expected vocabulary"
            )
        _atomic_write(path, data)
        return data


def vocabulary_file(name: str) -> Path:
    """Path of the verified ``.tiktoken`` file for ``name``, building it if needed."""
    _verified_bytes(name)
    return cache_dir() / f"{name}.tiktoken"


def _parse_tiktoken(data: bytes) -> dict[bytes, int]:
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        token, rank = line.split()
        ranks[base64.b64decode(token)] = int(rank)
    return ranks


@cache
def get_encoding(name: str) -> tiktoken.Encoding:
    """A tiktoken Encoding for ``name`` (see ENCODINGS), built offline from verified data.

    Cached per process; the cache directory is read on the first call for each name.
    For qwen3 the Encoding does not NFC-normalise; count_tokens does.
    """
    spec = _spec(name)
    ranks = _parse_tiktoken(_verified_bytes(name))
    if len(ranks) != spec.n_ranks:
        raise VocabularyError(f"{name}: expected {spec.n_ranks} ranks, got {len(ranks)}")
    return tiktoken.Encoding(
        name=name,
        pat_str=spec.pat_str,
        mergeable_ranks=ranks,
        special_tokens=dict(spec.special_tokens),
    )


def count_tokens(text: str, encoding: str) -> int:
    """Number of tokens in ``text``; special-token strings count as plain text."""
    if not isinstance(text, str):
        raise TypeError(f"text must be str, not {type(text).__name__}")
    enc = get_encoding(encoding)
    if _SPECS[encoding].nfc:
        text = unicodedata.normalize("NFC", text)
    return len(enc.encode(text, disallowed_special=()))
