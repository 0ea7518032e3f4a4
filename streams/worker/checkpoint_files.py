"""Checkpoints on disk: the worker's engine state with the input offsets it covers, so a restart
restores the state and re-reads only the tail of the topic (``streams/worker/recovery.py``).

Every ``--checkpoint-seconds`` the worker, between two batches (nothing half-published), takes
``graph.snapshot.dump`` of its engine with these facts:

* ``offsets`` — per log the state is a prefix of (each input partition whose window it holds, and
  the changes topic when it holds stage B), the next offset the state has not seen;
* ``verdicts`` — ids of the verdicts applied (re-applied verdicts are skipped, not applied twice);
* ``damage`` — API exchanges already counted per alert (the metric does not count them again).

The audit store is flushed first, so every row the state implies is on disk before the checkpoint
says it is covered. Files: ``<dir>/latest.ckpt`` and the one before it, ``<dir>/previous.ckpt``;
each is written to a temporary file, synced and renamed, so a crash leaves the old one whole. On
start the newest one that checks out is restored; a corrupt or incompatible one (another build,
another detection configuration, another partition count, a topic that was recreated) is logged
with its reason, shown by ``fraudgraph_restore{outcome=...}``, and the worker falls back to the
previous checkpoint or to a full rebuild from the topic — never to wrong state. With
``--checkpoint-key-file`` every checkpoint is signed (HMAC-SHA256) and one the key did not sign is
refused as ``forged``. Nothing in a checkpoint can run code when read (graph/snapshot.py).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graph import snapshot as checkpoint
from graph.snapshot import CheckpointError
from graph.config import DetectionConfig
from graph.engine import DetectionEngine
from streams.runtime.pipeline import Pipeline, Record

log = logging.getLogger("fraudgraph.checkpoints")

LATEST, PREVIOUS = "latest.ckpt", "previous.ckpt"
OUTCOMES = ("restored", "missing", "corrupt", "incompatible", "forged")


@dataclass(frozen=True, slots=True)
class Restored:
    engine: DetectionEngine
    offsets: dict[tuple[str, int], int]  # (topic, partition) -> next offset the state has not seen
    verdicts: set[str]
    damage: dict[str, int]
    path: Path
    written_at: float
    flagged: list[Any] = field(default_factory=list)  # the flagged-accounts feed's state (FlaggedAccounts.to_json)


class CheckpointStore:
    def __init__(self, directory: str | os.PathLike[str], key: bytes | None = None) -> None:
        """``key``: checkpoints are signed with it, and only ones it signed are restored."""
        self.directory = Path(directory)
        self.key = key

    def save(self, data: bytes) -> int:
        """Write ``data`` as the latest checkpoint (the one it replaces becomes the previous)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for stale in self.directory.glob(f".{LATEST}.*.tmp"):  # a write a crash interrupted
            stale.unlink(missing_ok=True)
        tmp = self.directory / f".{LATEST}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        latest = self.directory / LATEST
        if latest.exists():
            os.replace(latest, self.directory / PREVIOUS)
        os.replace(tmp, latest)
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)  # the renames themselves survive a power cut
        finally:
            os.close(fd)
        return len(data)

    def candidates(self) -> list[Path]:
        return [p for p in (self.directory / LATEST, self.directory / PREVIOUS) if p.is_file()]


def capture(pipeline: Pipeline, wall: Callable[[], float] = time.time, key: bytes | None = None) -> bytes:
    """The pipeline's engine and the facts a restart needs (call between batches)."""
    pipeline.held_as_records()
    offsets = [[topic, partition, offset] for (topic, partition), offset in sorted(pipeline.next_offsets.items())]
    facts = {"offsets": offsets, "verdicts": sorted(pipeline.applied_verdicts),
             "damage": dict(sorted(pipeline.damage_counted.items())), "written_at": wall(),
             "flagged": pipeline.flagged_feed.to_json()}
    return checkpoint.dump(pipeline.engine, facts, key=key)


def restore(store: CheckpointStore, config: DetectionConfig, partitions: int, topics: tuple[str, str],
            end_offsets: dict[tuple[str, int], int], clock: Callable[[], float] = time.time,
            idle_seconds: float = 5.0) -> tuple[Restored | None, str]:
    """The newest checkpoint that checks out for this configuration, partition count and topics
    (input, changes), and the outcome (one of ``OUTCOMES``: the first refusal's kind if none could be
    restored)."""
    outcome = "missing"
    for path in store.candidates():
        try:
            data = path.read_bytes()
            engine, facts = checkpoint.load(data, config, clock, idle_seconds, partitions, split=True, key=store.key,
                                            source=Record)
            offsets = _offsets(facts, topics, partitions, end_offsets)
        except CheckpointError as exc:
            log.error("checkpoint %s not used (%s); %s", path, exc,
                      "trying the previous one" if path.name == LATEST else "rebuilding from the topic")
            outcome = exc.kind if outcome == "missing" else outcome
            continue
        except OSError as exc:
            log.error("checkpoint %s not readable (%s)", path, exc)
            outcome = "corrupt" if outcome == "missing" else outcome
            continue
        return Restored(engine, offsets, set(map(str, facts.get("verdicts", []))),
                        {str(k): int(v) for k, v in dict(facts.get("damage", {})).items()}, path,
                        float(facts.get("written_at", 0.0)), list(facts.get("flagged", []))), "restored"
    return None, outcome


def _offsets(facts: dict[str, Any], topics: tuple[str, str], partitions: int,
             end_offsets: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
    try:
        offsets = {(str(t), int(p)): int(o) for t, p, o in facts["offsets"]}
    except (KeyError, TypeError, ValueError):
        raise CheckpointError("corrupt", "no input offsets in its facts") from None
    covered = {t for t, _p in offsets}
    if covered - set(topics):
        raise CheckpointError("incompatible", f"it covers topic(s) {sorted(covered)}, this worker reads {list(topics)}")
    for (t, p), offset in offsets.items():
        if t == topics[0] and p >= partitions:
            raise CheckpointError("incompatible", f"it covers partition {p} of {t}, which has {partitions}")
        if offset > end_offsets.get((t, p), 0):
            raise CheckpointError("incompatible", f"it covers {t}[{p}] up to offset {offset}, but the topic ends "
                                  f"at {end_offsets.get((t, p), 0)} (recreated or truncated?)")
    return offsets
