"""Decode → engine → sinks, shared by the Faust worker, ``replay`` and recovery.

The pipeline itself does no network I/O: it returns what must be published (dead letters, alert
messages) and buffers audit rows; the caller sends and flushes. That keeps Faust-specific code in
``streams/worker/app.py`` and lets replay and tests run the identical path.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, UTC
from typing import Any, Protocol, runtime_checkable

import orjson

from graph import _kernel
from graph.alerts import AlertUpdate
from graph.engine import DetectionEngine, EngineOutput
from graph.events import EventColumns
from graph.vocab import Severity
from streams.sinks.audit import AuditStore
from streams.runtime.changes import Change, ChangeRecord, batch_records, idle_record
from streams.contract import ErrorKind, InvalidEvent, decode_event
from streams.sinks.link_rows import LinkSource
from streams.sinks.metrics import Metrics
from streams.runtime.flagged import FlaggedAccounts, FlagRecord
from streams.runtime.pseudonyms import Pseudonymiser

MEMBER_SAMPLE = 100  # accounts listed in a Kafka alert; the audit store has them all
_ENGINE_COUNTERS = ("duplicates", "late", "too_old")  # engine counters mirrored by metrics of the same name


@dataclass(frozen=True, slots=True)
class Record:
    value: bytes | None
    key: bytes | None = None
    partition: int = 0
    offset: int = 0
    topic: str = ""
    headers: tuple[tuple[str, bytes], ...] = ()


DLQ_VALUE_LIMIT = 256 * 1024  # larger originals are truncated so the dead letter itself fits a request


@runtime_checkable
class KafkaMessage(Protocol):
    """A Kafka client's message object (confluent-kafka's ``Message``): read only to dead-letter it."""

    def value(self) -> bytes | None: ...
    def key(self) -> bytes | None: ...
    def partition(self) -> int: ...
    def offset(self) -> int: ...
    def topic(self) -> str: ...
    def headers(self) -> list[tuple[str, bytes]] | None: ...


@dataclass(slots=True)
class Part:
    """One partition's records of a batch, in offset order: values, offsets and each one's source."""

    values: list[bytes | None] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    sources: list[Any] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: Record
    reason: str
    kind: str  # a bounded label: streams.contract.ErrorKind or graph.window.Rejection
    stage: str = "decode"

    def value(self) -> bytes | None:
        value = self.record.value
        return value[:DLQ_VALUE_LIMIT] if value is not None and len(value) > DLQ_VALUE_LIMIT else value

    def headers(self) -> list[tuple[str, bytes]]:
        headers = [
            ("fraudgraph.error.reason", self.reason.encode("utf-8", "replace")),
            ("fraudgraph.error.kind", self.kind.encode()),
            ("fraudgraph.source.topic", self.record.topic.encode()),
            ("fraudgraph.source.partition", str(self.record.partition).encode()),
            ("fraudgraph.source.offset", str(self.record.offset).encode()),
        ]
        if self.record.value is not None and len(self.record.value) > DLQ_VALUE_LIMIT:
            headers.append(("fraudgraph.value.truncated", f"{len(self.record.value)}".encode()))
        return headers


@dataclass(slots=True)
class Fed:
    """What stage A made of a batch of input, for stage B (``Pipeline.feed_lines`` → ``apply_fed``)."""

    dead: list[DeadLetter]  # refused by the decoder or the window, in source order
    batches: list[_kernel.Batch]  # the ticks the window closed
    n_in: int
    n_ok: int
    received: float
    counters: dict[str, int] | None  # the windows' counters after it (for the metrics; None without)
    end: bool = False  # the input ended: stage B applies everything it holds


@dataclass(slots=True)
class Emitted:
    dead: list[DeadLetter] = field(default_factory=list)
    alerts: list[AlertUpdate] = field(default_factory=list)  # to publish (notify=True only)
    changes: list[ChangeRecord] = field(default_factory=list)  # split engine: stage A's batches for stage B
    flagged: list[FlagRecord] = field(default_factory=list)  # to the flagged-accounts feed, one per account
    output: EngineOutput = field(default_factory=EngineOutput)


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alert_message(update: AlertUpdate) -> bytes:
    added = list(update.members_added[:MEMBER_SAMPLE])
    return orjson.dumps({
        "alert_id": update.alert_id, "version": update.version, "action": update.action,
        "cluster_id": update.cluster_id, "severity": update.severity, "score": update.score,
        "member_count": update.member_count, "requests": update.requests, "tokens_out": update.tokens_out,
        "detected_at": iso(update.detected_at),
        "alerted_at": iso(update.alerted_at), "created_at": iso(update.created_at), "reason": update.reason,
        "summary": update.summary, "features": update.features,
        "evidence": [
            {"entity_type": e.entity_type, "entity_value": e.entity_value, "members_sharing": e.members_sharing,
             "first_seen": iso(e.first_seen), "last_seen": iso(e.last_seen)} for e in update.evidence[:20]
        ],
        "members_added": added, "members_added_count": len(update.members_added),
        "members_removed_count": len(update.members_removed),
    })


def _remapped(fallback: Callable[[int], tuple[object, ...] | None],
              index: list[int]) -> Callable[[int], tuple[object, ...] | None]:
    """``fallback`` for a sub-batch: its value ``j`` is value ``index[j]`` of the whole batch."""
    return lambda j: fallback(index[j])


class Pipeline:
    """``live=True`` (the worker) bounds event time by the wall clock too; replay and tests leave it off."""

    def __init__(self, engine: DetectionEngine, audit: AuditStore | None = None, metrics: Metrics | None = None,
                 wall: Callable[[], float] = time.time, live: bool = False,
                 pseudonymiser: Pseudonymiser | None = None, feed: bool = True) -> None:
        """``feed``: keep the flagged-accounts feed (``Emitted.flagged``); replay, which publishes no
        feed, leaves it off."""
        self.engine = engine
        self.pseudonymiser = pseudonymiser  # renames raw identifiers in everything written out
        self.audit = audit
        if audit is not None:
            engine.detector.capture_links = self._capture_links
        self.metrics = metrics
        self.wall = wall
        self.live = live
        self.last_input_wall = wall()
        self.recovering = False  # while True nothing reaches the metrics (recovery pages nobody)
        self.next_offsets: dict[tuple[str, int], int] = {}  # (topic, partition) -> next offset to handle
        self.applied_verdicts: set[str] = set()  # verdict ids applied (a checkpoint keeps them)
        self.step_open = False  # the worker changed the state and has not yet sent all it emitted
        # alert id -> newest version already published (acknowledged before a restart too, as the audit
        # store recorded it): never published or counted twice
        self.published: dict[str, int] = {}
        self.damage_counted: dict[str, int] = {}  # alert id -> API exchanges already counted in the metric
        self.flagged_feed = FlaggedAccounts()  # which accounts open actionable alerts hold (a checkpoint keeps it)
        self.feed = feed
        self.feed_key: bytes | None = None  # signs the flagged-accounts records (the verdict key)
        self.partition_input: dict[int, float] = {}  # split: input partition -> wall time of its last input
        self.idle_sent: set[int] = set()  # split: partitions declared idle to stage B since their last input
        self._counted = {name: 0 for name in _ENGINE_COUNTERS}
        self.source_name = ""  # the file being replayed (names dead-lettered lines)
        self._lines: list[bytes] = []
        self._first_line = 0
        self._held_lines: dict[int, bytes | None] = {}

    def handle(self, records: Sequence[Record]) -> Emitted:
        """One batch of Kafka records."""
        emitted = Emitted()
        offsets = self.next_offsets
        values: list[bytes] = []
        sources: list[Record] = []
        for record in records:
            key = (record.topic, record.partition)
            if record.offset >= offsets.get(key, 0):
                offsets[key] = record.offset + 1
            if record.value is None:
                emitted.dead.append(DeadLetter(record, "empty value (tombstone)", ErrorKind.TOMBSTONE))
            else:
                values.append(record.value)
                sources.append(record)
        return self._process(values, sources, emitted, len(records), sources.__getitem__)

    def handle_partitions(self, topic: str, parts: dict[int, Part]) -> Emitted:
        """One batch of input records by partition (the worker's batch intake): no Record is made per
        record; a record's ``source`` (e.g. the Kafka client's message) becomes one only when it is
        dead-lettered. Records the state already holds (below ``next_offsets``) are skipped."""
        engine = self.engine
        if not engine.split:  # one window in-process: the record path
            records = [self._record_of(s) for part in parts.values() for s in part.sources]
            return self.handle(records)
        emitted = Emitted()
        received = self.wall()
        self.last_input_wall = received
        wall = received if self.live else None
        out = EngineOutput()
        n_in = n_ok = 0
        for partition in sorted(parts):
            part = parts[partition]
            key = (topic, partition)
            start = bisect_left(part.offsets, self.next_offsets.get(key, 0))
            if start == len(part.offsets):
                continue
            self.next_offsets[key] = part.offsets[-1] + 1
            values, sources = part.values[start:], part.sources[start:]
            n_in += len(values)
            if partition >= engine.partitions:
                raise RuntimeError(f"input partition {partition} but the engine was built for "
                                   f"{engine.partitions}; restart the worker to pick up the new partition count")
            invalid = 0

            def fallback(i: int, values: list[bytes | None] = values, sources: list[Any] = sources) -> tuple[object, ...] | None:
                nonlocal invalid
                value = values[i]
                try:
                    if value is None:
                        raise InvalidEvent("empty value (tombstone)", ErrorKind.TOMBSTONE)
                    return EventColumns.fields(decode_event(value))
                except InvalidEvent as exc:
                    invalid += 1
                    emitted.dead.append(DeadLetter(self._record_of(sources[i]), exc.reason, exc.kind))
                    return None

            out.rejected.extend(engine.feed_json([v if v is not None else b"" for v in values], sources, fallback,
                                                 wall, partition))
            n_ok += len(values) - invalid
            emitted.changes.extend(batch_records(partition, engine.take_batches(partition)))
            self.partition_input[partition] = received
            self.idle_sent.discard(partition)
        self._after(out, emitted, received, n_in, n_ok)
        return emitted

    def handle_lines(self, lines: list[bytes], first_line: int, name: str) -> Emitted:
        """Lines of a file (replay): each event's source is its line number; a Record is made only for a
        line that is dead-lettered (with the raw line while it is in the batch at hand)."""
        self._lines, self._first_line, self.source_name = lines, first_line, name
        try:
            return self._process(lines, list(range(first_line, first_line + len(lines))), Emitted(), len(lines),
                                 lambda i: Record(lines[i], None, 0, first_line + i, name))
        finally:
            self._keep_held(lines, first_line)

    # Replay with a split engine: stage A (``feed_lines``, ``feed_end``) on a thread of its own, a batch
    # or two ahead of stage B (``apply_fed``) on the caller's. The stages share nothing but the ``Fed``
    # they pass, in order: the same batches applied in the same order give what ``handle_lines`` gives.
    def feed_lines(self, lines: list[bytes], first_line: int, name: str) -> Fed:
        """Stage A for lines of a file: decode and window them; the dead letters and the ticks closed."""
        if not self.engine.split:
            raise ValueError("feed_lines needs a split engine (handle_lines runs both stages at once)")
        self._lines, self._first_line, self.source_name = lines, first_line, name
        dead: list[DeadLetter] = []
        try:
            received = self.last_input_wall = self.wall()
            rejected = self.engine.feed_json(lines, list(range(first_line, first_line + len(lines))),
                                             self._fallback(lines, dead, lambda i: Record(lines[i], None, 0, first_line + i, name)),
                                             received if self.live else None)
            invalid = len(dead)
            dead += [DeadLetter(self._record_of(r.source), r.reason, r.kind.value, "engine") for r in rejected]
            return Fed(dead, self.engine.take_batches(0), len(lines), len(lines) - invalid, received, self._counters())
        finally:
            self._keep_held(lines, first_line)

    def feed_end(self) -> Fed:
        """Stage A at the end of input: release what the window holds; stage B then applies everything."""
        received = self.wall()
        rejected = self.engine.flush_partition(0, received if self.live else None)
        dead = [DeadLetter(self._record_of(r.source), r.reason, r.kind.value, "engine") for r in rejected]
        return Fed(dead, self.engine.take_batches(0), 0, 0, received, self._counters(), end=True)

    def apply_fed(self, fed: Fed) -> Emitted:
        """Stage B: apply what stage A closed, tick by tick (at the end of input: everything, and settle)."""
        engine = self.engine
        for batch in fed.batches:
            engine.receive(0, batch)
        if fed.end:
            engine.receive_idle(0)
        emitted = Emitted(dead=fed.dead)
        self._after(engine.release(), emitted, fed.received, fed.n_in, fed.n_ok, fed.counters)
        return emitted

    def _counters(self) -> dict[str, int] | None:
        """The windows' counters, read by stage A for the metrics (stage B never reads the windows)."""
        return self.engine.counters if self.metrics is not None else None

    def _fallback(self, values: list[bytes], dead: list[DeadLetter],
                  record_of: Callable[[int], Record]) -> Callable[[int], tuple[object, ...] | None]:
        """What the kernel's strict decoder left: the contract's own decoder decides (an event it refuses
        is dead-lettered into ``dead``)."""
        def fallback(i: int) -> tuple[object, ...] | None:
            try:
                return EventColumns.fields(decode_event(values[i]))
            except InvalidEvent as exc:
                dead.append(DeadLetter(record_of(i), exc.reason, exc.kind))
                return None
        return fallback

    def _keep_held(self, lines: list[bytes], first_line: int) -> None:
        """Lines the clock guard still holds keep their text for the dead-letter file."""
        held = self.engine.held_sources()
        if held or self._held_lines:
            keep = {}
            for source in held:
                index = source - first_line
                keep[source] = lines[index] if 0 <= index < len(lines) else self._held_lines.get(source)
            self._held_lines = keep
        self._lines = []

    def _process(self, values: list[bytes], sources: list[Any], emitted: Emitted, n_in: int,
                 record_of: Callable[[int], Record]) -> Emitted:
        dead_before = len(emitted.dead)
        fallback = self._fallback(values, emitted.dead, record_of)
        received = self.wall()
        self.last_input_wall = received
        wall = received if self.live else None
        engine = self.engine
        if engine.partitions == 1 and not engine.split:
            out = engine.process_json(values, sources, fallback, wall=wall)
        else:  # each input partition to its own window, then the ticks every partition has closed
            out = EngineOutput()
            by_partition: dict[int, list[int]] = {}
            for i, source in enumerate(sources):
                by_partition.setdefault(source.partition, []).append(i)
            for partition in sorted(by_partition):
                index = by_partition[partition]
                if partition >= engine.partitions:
                    raise RuntimeError(f"input partition {partition} but the engine was built for "
                                       f"{engine.partitions}; restart the worker to pick up the new partition count")
                out.rejected.extend(engine.feed_json([values[i] for i in index], [sources[i] for i in index],
                                                     _remapped(fallback, index), wall, partition))
                if engine.split:  # stage A: what the window closed goes to stage B (another process)
                    emitted.changes.extend(batch_records(partition, engine.take_batches(partition)))
                    self.partition_input[partition] = received
                    self.idle_sent.discard(partition)
            if not engine.split:
                engine.detect(out, wall)
        self._after(out, emitted, received, n_in, len(values) - (len(emitted.dead) - dead_before))
        return emitted

    def flush_held(self) -> Emitted:
        """Release events held for lateness (the input went idle, or it ended)."""
        emitted = Emitted()
        received = self.wall()
        out = self.engine.flush(wall=received if self.live else None)
        self._after(out, emitted, received, 0, 0)
        return emitted

    def flush_partition(self, partition: int) -> Emitted:
        """Split stage A: ``partition`` went idle: release what its window holds, send the ticks that
        closes, and tell stage B the partition no longer holds the others back."""
        emitted = Emitted()
        received = self.wall()
        out = EngineOutput()
        if self.engine.windows[partition].kernel.held_events:
            out.rejected = self.engine.flush_partition(partition, wall=received if self.live else None)
        emitted.changes = [*batch_records(partition, self.engine.take_batches(partition)), idle_record(partition)]
        self.idle_sent.add(partition)
        self._after(out, emitted, received, 0, 0)
        return emitted

    def held_as_records(self, partition: int | None = None) -> None:
        """The events the clock guard holds (in ``partition``'s window, or in all) keep their source as a
        :class:`Record` (the Kafka client's message objects are not state a checkpoint may hold: a restore
        refuses to build them)."""
        for window in self.engine.windows if partition is None else [self.engine.windows[partition]]:
            window.map_held(self._record_of)

    def release_partition(self, key: tuple[str, int]) -> None:
        """Split stage A: another worker owns input partition ``key`` now; forget its window."""
        self.engine.reset_window(key[1])
        self.next_offsets.pop(key, None)
        self.partition_input.pop(key[1], None)
        self.idle_sent.discard(key[1])

    def apply_change(self, change: Change) -> tuple[Emitted, int]:
        """Split stage B: one decoded record of the changes topic (batches or an idle mark); returns what
        to publish and how many batches were already here (sent again after a crash)."""
        emitted = Emitted()
        duplicates = 0
        if change.kind == "idle":
            self.engine.receive_idle(change.partition)
        for batch in change.batches:
            duplicates += not self.engine.receive(change.partition, batch)
        self._after(self.engine.release(), emitted, self.wall(), 0, 0)
        return emitted, duplicates

    def apply_verdict(self, cluster_id: str, verdict: str, verdict_id: str | None = None) -> Emitted:
        emitted = Emitted()
        out = self.engine.apply_verdict(cluster_id, verdict)
        if verdict_id:
            self.applied_verdicts.add(verdict_id)
        self._after(out, emitted, self.wall(), 0, 0)
        return emitted

    def end_recovery(self) -> None:
        """Recovery re-applied history: count from here on, as if the rebuilt state had always been."""
        self.recovering = False
        self._counted = {name: self.engine.counters[name] for name in _ENGINE_COUNTERS}

    def _capture_links(self, graph: LinkSource, cluster_id: str, accounts: list[str]) -> None:
        """The engine, at the tick an alert gains members: their links to the audit store (renamed)."""
        assert self.audit is not None
        source = self.pseudonymiser.link_source(graph) if self.pseudonymiser is not None else graph
        self.audit.add_links(source, cluster_id, accounts)

    def _after(self, out: EngineOutput, emitted: Emitted, received: float, n_in: int, n_ok: int,
               counters: dict[str, int] | None = None) -> None:
        """``counters``: the windows' counters as stage A read them (else read here)."""
        if self.pseudonymiser is not None:
            self.pseudonymiser.output(out)
        emitted.output = out
        published = self.published
        fresh = [a for a in out.alerts if a.notify and a.version > published.get(a.alert_id, 0)]
        for update in fresh:
            published[update.alert_id] = update.version
        emitted.alerts = [] if self.recovering else fresh
        if out.alerts and self.feed:  # every version, in order: the feed follows membership between publications too
            records = {r.account_id: r for u in out.alerts for r in self.flagged_feed.apply(u)}  # the last per account
            emitted.flagged = [] if self.recovering else list(records.values())
        for rejected in out.rejected:
            record = self._record_of(rejected.source)
            emitted.dead.append(DeadLetter(record, rejected.reason, rejected.kind.value, "engine"))
        if len(emitted.dead) > 1:  # in source order, whichever stage refused them
            emitted.dead.sort(key=lambda d: (d.record.topic, d.record.partition, d.record.offset))
        if self.audit is not None and out:
            self.audit.add_output(out)
        m = self.metrics
        if m is None or self.recovering:
            return
        now = self.wall()
        if n_in:
            # engine out: what it took into its window, not refused as clock_skew or id_conflict
            refused = sum(1 for dead in emitted.dead if dead.stage == "engine")
            m.events_in.labels("decode").inc(n_in)
            m.events_out.labels("decode").inc(n_ok)
            m.events_in.labels("engine").inc(n_ok)
            m.events_out.labels("engine").inc(max(0, n_ok - refused))
            m.last_processed.labels("decode").set(now)
            m.last_processed.labels("engine").set(now)
            m.batch_seconds.observe(now - received)
        for dead in emitted.dead:
            m.errors.labels(dead.stage, dead.kind).inc()
        counters = counters if counters is not None else self.engine.counters
        for name, metric in ((n, getattr(m, n)) for n in _ENGINE_COUNTERS):
            metric.inc(counters[name] - self._counted[name])
            self._counted[name] = counters[name]
        if out.watermark > float("-inf"):
            m.watermark.set(out.watermark)
        for update in fresh:
            m.alerts.labels(update.severity, update.action).inc()
            if update.action != "closed":  # damage newly attributed to alerted clusters
                counted = self.damage_counted.get(update.alert_id, 0)
                if update.requests > counted:
                    m.alerted_requests.labels(update.severity).inc(update.requests - counted)
                    self.damage_counted[update.alert_id] = update.requests
        for update in out.alerts:
            if update.action in ("opened", "escalated"):
                m.detection_latency.observe(max(0.0, now - received))
                m.detection_event_lag.observe(max(0.0, update.alerted_at - update.detected_at))
            if update.members_added and update.action != "opened":
                m.members_added.labels(update.severity).inc(len(update.members_added))

    def _record_of(self, source: object) -> Record:
        if isinstance(source, Record):
            return source
        if isinstance(source, KafkaMessage):  # the batch intake's own message objects
            return Record(source.value(), source.key(), source.partition(), source.offset(), source.topic(),
                          tuple(source.headers() or ()))
        if isinstance(source, int):  # a replayed line; its text is at hand unless held since an earlier batch
            index = source - self._first_line
            value = self._lines[index] if 0 <= index < len(self._lines) else self._held_lines.get(source)
            return Record(value, None, 0, source, self.source_name)
        return Record(None, None, -1, -1, "")

    def refresh_gauges(self, global_stage: bool = True) -> None:
        """``global_stage``: this process holds stage B (else its graph gauges read 0, so that a sum
        over workers counts each cluster once)."""
        m = self.metrics
        if m is None:
            return
        stats = self.engine.stats()
        m.live_links.set(stats["links"])
        m.held_events.set(stats["held_events"])
        m.live_accounts.set(stats["accounts"] if global_stage else 0)
        m.live_entities.set(stats["entities"] if global_stage else 0)
        m.live_clusters.set(stats["clusters"] if global_stage else 0)
        for severity in Severity:
            m.open_alerts.labels(severity).set(stats[f"open_alerts_{severity}"] if global_stage else 0)

    def flush_audit(self) -> int:
        if self.audit is None or not self.audit.pending():
            return 0
        try:
            written = self.audit.flush()
        except OSError:
            if self.metrics:
                self.metrics.audit_errors.inc()
            raise
        if self.metrics:
            self.metrics.audit_rows.inc(written)
        return written
