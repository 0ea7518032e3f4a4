"""Shared keys and signatures. A verdict can mute detection of a ring, so the worker applies only
verdicts signed with a key it shares with ``fraudgraph verdict``; the pseudonymisation key is loaded
the same way.

The signature is HMAC-SHA256 over the verdict's fields in a canonical encoding (sorted keys, UTF-8
JSON), hex-encoded in its ``signature`` field. Anyone who can write to ``fraud-verdicts`` but does not
hold the key cannot forge one; the topic's ACL (only the analysts' principal may write) is the first
line, this is the second, and it still holds when the ACL is wrong.

    >>> key = b"k" * 32
    >>> v = sign({"verdict_id": "v1", "cluster_id": "C0000001", "verdict": "benign", "analyst": "alice",
    ...           "note": "", "at": 1767571200.0}, key)
    >>> refusal(v, key) is None
    True
    >>> refusal({**v, "verdict": "confirmed"}, key)
    'forged'
    >>> refusal({k: x for k, x in v.items() if k != "signature"}, key)
    'unsigned'
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

import orjson

SIGNED_FIELDS = ("verdict_id", "cluster_id", "verdict", "analyst", "note", "at")
MIN_KEY_BYTES = 16


class KeyFileError(ValueError):
    """The key file is missing, unreadable or too short (the message says which)."""


def load_key(path: str, what: str = "verdict key file") -> bytes:
    """A shared key: the file's bytes without surrounding whitespace (at least 16 of them)."""
    try:
        key = Path(path).read_bytes().strip()
    except OSError as exc:
        raise KeyFileError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None
    if len(key) < MIN_KEY_BYTES:
        raise KeyFileError(f"the {what} {path} holds {len(key)} bytes; use at least {MIN_KEY_BYTES} "
                           "(e.g. `head -c 32 /dev/urandom | base64 > verdict.key`)")
    return key


def canonical(verdict: dict[str, Any]) -> bytes:
    return orjson.dumps({k: verdict.get(k) for k in SIGNED_FIELDS}, option=orjson.OPT_SORT_KEYS)


def hmac_hex(key: bytes, data: bytes) -> str:
    """HMAC-SHA256 of ``data`` under ``key``, hex: how verdicts and flagged-account records are signed."""
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def signature(verdict: dict[str, Any], key: bytes) -> str:
    return hmac_hex(key, canonical(verdict))


def sign(verdict: dict[str, Any], key: bytes) -> dict[str, Any]:
    return {**verdict, "signature": signature(verdict, key)}


def refusal(verdict: dict[str, Any], key: bytes) -> str | None:
    """Why a verdict must not be applied (``unsigned`` or ``forged``), or None when it is authentic."""
    given = verdict.get("signature")
    if not isinstance(given, str) or not given:
        return "unsigned"
    if not hmac.compare_digest(given, signature(verdict, key)):
        return "forged"
    return None
