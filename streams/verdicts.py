"""Authentic verdicts: a verdict can mute detection of a ring, so the worker applies only verdicts
signed with a key it shares with ``fraudgraph verdict``.

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
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from streams.pipeline import Emitted, Pipeline

log = logging.getLogger("fraudgraph")

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


def signature(verdict: dict[str, Any], key: bytes) -> str:
    return hmac.new(key, canonical(verdict), hashlib.sha256).hexdigest()


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


def apply_verdict_value(pipeline: Pipeline, value: bytes | None, key: bytes | None = None) -> tuple[str, Emitted | None]:
    """One ``fraud-verdicts`` record: (outcome label, what to publish). With ``key``, a verdict that is
    not signed with it is refused (``unsigned`` / ``forged``), logged and never applied."""
    try:
        if value is None:
            raise ValueError("empty value (tombstone)")
        verdict = orjson.loads(value)
        if not isinstance(verdict, dict):
            raise TypeError(f"a verdict is a JSON object, not {type(verdict).__name__}")
        cluster_id, decision = str(verdict["cluster_id"]), str(verdict["verdict"])
        if key is not None:
            why = refusal(verdict, key)
            if why is not None:
                log.error("refused verdict (%s): %r on %s (analyst %r, id %r): not applied", why, decision[:20],
                          cluster_id[:80], str(verdict.get("analyst", ""))[:80], str(verdict.get("verdict_id", ""))[:80])
                return why, None
        verdict_id = str(verdict.get("verdict_id") or "") or None
        if verdict_id is not None and verdict_id in pipeline.applied_verdicts:
            return "duplicate", None  # delivered again after a restart: its effect is in the state
        if pipeline.engine.resolve(cluster_id) is None:
            log.warning("verdict for unknown cluster %s ignored", cluster_id[:80])
            return "unknown_cluster", None
        return "applied", pipeline.apply_verdict(cluster_id, decision, verdict_id)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        log.warning("ignoring malformed verdict %r: %s", (value or b"")[:200], exc)
        return "malformed", None
