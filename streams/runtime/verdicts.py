"""Applying an analyst's verdict (one ``fraud-verdicts`` record) to the pipeline; only verdicts signed
with the shared key (``streams.runtime.keys``) are applied when a key is configured."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import orjson

from streams.runtime.keys import refusal

if TYPE_CHECKING:
    from streams.runtime.pipeline import Emitted, Pipeline

log = logging.getLogger("fraudgraph")


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
