"""Checkpoints by stage: each input partition's window (stage A) and stage B are checkpointed on their
own, so whichever worker a group hands a partition or stage B adopts that unit's newest checkpoint and
re-reads only the records after it (``streams/worker/recovery.py``) — a takeover costs the state's
size, not the history's length.

Units and what rides along with each (``graph.snapshot.dump_unit``):

* ``window-<p>`` — partition ``p``'s window; ``offset``: the next input offset of ``p`` it has not seen;
* ``global`` — stage B; ``offset``: the next changes-topic offset; ``verdicts`` (ids applied: a
  verdict re-read is not applied twice), ``damage`` (exchanges already counted per alert: the metric
  does not count them again) and ``flagged`` (the flagged-accounts feed's state).

Every ``--checkpoint-seconds`` the worker, between two steps (everything the state emitted is
acknowledged by the broker), flushes the audit store (every row the state implies is written before
a checkpoint says it is covered) and captures the units it holds — assigned to it and verified against
its group's offset; a unit another worker now owns is never written from here. Where they go
(``--checkpoint-store``):

* ``kafka`` (default): the compacted topic ``<app-id>-checkpoints`` (``checkpoint_topic.py``), which
  every worker reads: nothing new to run, and the broker's replication makes it as durable as the
  input itself;
* ``disk``: ``<checkpoint-dir>/<unit>/latest.ckpt`` and ``previous.ckpt`` on this worker's volume
  (``DirectoryStore``): a restart on the same volume adopts them; a worker without them rebuilds.

Each unit keeps its latest checkpoint and the one before it. On adoption the candidates are tried
newest offset first; one that does not check out (corrupt, signed with another key or not at all —
``forged`` — another build, configuration, partition count, or covering offsets beyond the topic's end,
as after a topic was recreated) is refused with one log line naming why, counted in
``fraudgraph_restore{outcome}``, and the next is tried, then a rebuild from the topic — never wrong state,
never a crash. Nothing in a checkpoint can run code when read (``graph/snapshot.py``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from graph import snapshot
from graph.config import DetectionConfig
from graph.snapshot import GLOBAL, CheckpointError, window_unit
from streams.runtime.pipeline import Pipeline, Record

log = logging.getLogger("fraudgraph.checkpoints")

LATEST, PREVIOUS = "latest.ckpt", "previous.ckpt"
OUTCOMES = ("restored", "missing", "corrupt", "incompatible", "forged")


@dataclass(frozen=True, slots=True)
class Candidate:
    """One stored checkpoint of a unit: where it is (for the log) and its bytes (None: unreadable, why)."""

    label: str
    data: bytes | None
    why: str = ""


class Store(Protocol):
    key: bytes | None  # checkpoints are signed with it, and only ones it signed are adopted

    def save(self, unit: str, data: bytes, offset: int) -> int:
        """Keep ``data`` as ``unit``'s latest checkpoint (covering its log up to ``offset``); returns its size."""
        ...

    def read(self, units: list[str]) -> dict[str, list[Candidate]]:
        """Each unit's stored checkpoints, latest first."""
        ...

    def describe(self) -> str: ...


class DirectoryStore:
    """``--checkpoint-store disk``: ``<directory>/<unit>/latest.ckpt`` and ``previous.ckpt``, each written
    to a temporary file, synced and renamed, so a crash leaves the old one whole."""

    def __init__(self, directory: str | os.PathLike[str], key: bytes | None = None) -> None:
        self.directory = Path(directory)
        self.key = key

    def describe(self) -> str:
        return str(self.directory)

    def save(self, unit: str, data: bytes, offset: int = 0) -> int:
        folder = self.directory / unit
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(f".{LATEST}.*.tmp"):  # a write a crash interrupted
            stale.unlink(missing_ok=True)
        tmp = folder / f".{LATEST}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        latest = folder / LATEST
        if latest.exists():
            os.replace(latest, folder / PREVIOUS)
        os.replace(tmp, latest)
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)  # the renames themselves survive a power cut
        finally:
            os.close(fd)
        return len(data)

    def read(self, units: list[str]) -> dict[str, list[Candidate]]:
        out: dict[str, list[Candidate]] = {}
        for unit in units:
            found = []
            for path in (self.directory / unit / LATEST, self.directory / unit / PREVIOUS):
                if path.is_file():
                    try:
                        found.append(Candidate(str(path), path.read_bytes()))
                    except OSError as exc:
                        found.append(Candidate(str(path), None, f"not readable: {exc}"))
            out[unit] = found
        return out


def unit_of(key: tuple[str, int], events_topic: str) -> str:
    """The checkpoint unit of a log the worker consumes: an input partition's window, or stage B."""
    return window_unit(key[1]) if key[0] == events_topic else GLOBAL


def capture(pipeline: Pipeline, unit: str, key: tuple[str, int], wall: Callable[[], float] = time.time,
            signing_key: bytes | None = None) -> tuple[bytes, int]:
    """``unit``'s checkpoint and the offset of ``key`` (its log) it covers (call between two steps)."""
    offset = pipeline.next_offsets[key]
    facts: dict[str, Any] = {"topic": key[0], "offset": offset, "written_at": wall()}
    if unit == GLOBAL:
        facts.update(verdicts=sorted(pipeline.applied_verdicts), damage=dict(sorted(pipeline.damage_counted.items())),
                     flagged=pipeline.flagged_feed.to_json())
    else:
        pipeline.held_as_records(key[1])  # this window's held Kafka client messages kept as plain records
    return snapshot.dump_unit(pipeline.engine, unit, facts, key=signing_key), offset


@dataclass(slots=True)
class Adopted:
    """A unit's state from its checkpoint, ready for ``adopt``."""

    unit: str
    state: Any  # PartitionWindow, or stage B's (graph, policy)
    offset: int
    label: str
    written_at: float
    facts: dict[str, Any] = field(default_factory=dict)


def choose(unit: str, candidates: list[Candidate], config: DetectionConfig, partitions: int, topic: str,
           end_offset: int, above: int, key: bytes | None) -> tuple[Adopted | None, str]:
    """The newest candidate of ``unit`` that checks out and covers more than ``above`` records of
    ``topic`` (whose log ends at ``end_offset``), and the outcome: ``restored``, or the first refusal's kind
    (``missing`` without candidates), or ``held`` when none is newer than the state held."""
    outcome = "missing"
    read: list[tuple[int, Adopted]] = []
    for candidate in candidates:
        try:
            if candidate.data is None:
                raise CheckpointError("corrupt", candidate.why)
            state: Any
            if unit == GLOBAL:
                state, facts = snapshot.load_global(candidate.data, config, partitions, key=key)
            else:
                p = snapshot.window_partition(unit, partitions)
                state, facts = snapshot.load_window(candidate.data, config, p, partitions, key=key, source=Record)
            offset = _offset(facts, topic, end_offset)
        except CheckpointError as exc:
            log.error(f"checkpoint {candidate.label} not used ({exc})")  # one line each (the repeat filter)
            outcome = exc.kind if outcome == "missing" else outcome
            continue
        read.append((offset, Adopted(unit, state, offset, candidate.label, float(facts.get("written_at", 0.0)), facts)))
    read.sort(key=lambda pair: -pair[0])
    for offset, adopted in read:
        if offset > above:
            return adopted, "restored"
    return None, outcome if not read else "held"  # what the worker holds is as new


def _offset(facts: dict[str, Any], topic: str, end_offset: int) -> int:
    if facts.get("topic") != topic:
        raise CheckpointError("incompatible", f"it covers topic {facts.get('topic')!r}, this worker reads {topic!r}")
    offset = facts.get("offset")
    if not isinstance(offset, int) or offset < 0:
        raise CheckpointError("corrupt", "no offset in its facts")
    if offset > end_offset:
        raise CheckpointError("incompatible", f"it covers {topic} up to offset {offset}, but the topic ends at "
                              f"{end_offset} (recreated or truncated?)")
    return offset


def adopt(pipeline: Pipeline, adopted: Adopted, key: tuple[str, int]) -> None:
    """Put ``adopted`` in place of what the pipeline holds of ``key``'s unit."""
    from streams.runtime.flagged import FlaggedAccounts

    engine = pipeline.engine
    if adopted.unit == GLOBAL:
        engine.adopt_global(adopted.state)
        facts = adopted.facts
        pipeline.applied_verdicts = set(map(str, facts.get("verdicts", [])))
        pipeline.damage_counted = {str(k): int(v) for k, v in dict(facts.get("damage", {})).items()}
        pipeline.flagged_feed = FlaggedAccounts.from_json(list(facts.get("flagged", [])))
    else:
        engine.adopt_window(key[1], adopted.state)
        pipeline.idle_sent.discard(key[1])
    pipeline.next_offsets[key] = adopted.offset
