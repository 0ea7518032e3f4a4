"""The Faust app: the partitioned topology.

    account-events (N partitions, keyed by account)
        │  stage A: ``take``, fed in batches by the intake (``streams/worker/intake.py``) — decode,
        │  validate, de-duplicate, order by event time, the per-account link window and its expiry —
        │  on whichever worker the intake's group gave the partition
        ▼
    <app-id>-changes (1 partition): each window's change batches, idle marks, forwarded verdicts
        │  stage B: agent ``graph_stage`` — binding graph, clusters, lineage, scoring, alerts — on
        │  the one worker that holds this partition (another takes it over when that one dies)
        ▼
    fraud-alerts, the audit store, Prometheus

Two consumer groups do the rest: start more workers with the same ``--app-id`` and Kafka splits the
input partitions among them (the intake's group, ``<app-id>-intake``); Faust's group (``<app-id>``)
holds the changes topic, whose single partition makes stage B single owner. Stage B merges the partitions' ticks in event time (``graph/ticks.py``) and drops a batch it
already has, so the answer does not depend on how many workers there are or which one owns what.

Each stage's state is a prefix of its input log (``streams/worker/stages.py``); a partition that arrives
behind is brought up to the group's committed offset first (``streams/worker/recovery.py``), with
publishing off and ``fraudgraph_recovering`` at 1. Every ``--checkpoint-seconds`` the state this
worker holds is checkpointed, unit by unit (``streams/worker/checkpoints.py``), under the step lock, so a checkpoint never
covers an alert, dead letter or change batch not yet acknowledged by the broker.

Sending never drops: a dead letter that would not fit a request is truncated (with a header saying
so), and a failed send is retried with back-off while the batch's offsets stay uncommitted. Change
records are sent one at a time, each acknowledged before the next, so the changes topic holds each
partition's batches in tick order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import faust

from streams.runtime.allocator import MEMORY_RELEASE_SECONDS, release_free_memory
from graph.snapshot import GLOBAL, window_unit
from streams.worker.checkpoints import OUTCOMES, Candidate, Store, adopt, capture, choose, unit_of
from streams.runtime.changes import ChangeReader, verdict_record
from streams.kafka_security import faust_credentials
from streams.runtime.pipeline import Emitted, Pipeline, Record, alert_message
from streams.worker.recovery import (CHANGES_CONFIG, committed_offsets, end_offsets, log_start, partition_count,
                                     read_range, trim)
from streams.settings import Settings
from streams.runtime.flagged import encode
from streams.worker.intake import Batch, Intake
from streams.worker.stages import GlobalStage, fresh

log = logging.getLogger("fraudgraph")
EXIT_OWNERSHIP = 3  # exit status of a worker whose input topic changed its partition count under it
EXIT_FAILURE = 1  # exit status of a worker whose input consumer stopped
SESSION_TIMEOUT_SECONDS = 10.0  # a crashed worker's partitions are free again after this
RELEASE_SECONDS = 60.0  # state of a partition another worker has owned this long is dropped here
BLOCKED_RETRY_SECONDS = 60.0  # a stage B that cannot run tries its checkpoints again after this
ADOPTABLE_SECONDS = 60.0  # checkpoints read for a takeover serve the units assigned within this long
PARTITION_CHECK_SECONDS = 10.0  # how often the input topic's partition count is read
Key = tuple[str, int]  # (topic, partition)


def record_of(message: Any) -> Record:
    headers = message.headers
    pairs = tuple(headers.items()) if isinstance(headers, dict) else tuple(headers or ())
    return Record(message.value, message.key, message.partition, message.offset, message.topic, pairs)


class Ownership:
    """Which partitions this worker holds and whether each one's state has been checked against the
    offset its group delivers from since it was (re)assigned."""

    def __init__(self) -> None:
        self.joined = False  # Faust's group gave this worker an assignment (possibly empty)
        self.intake_joined = False  # the intake's group did
        self.verified: set[Key] = set()
        self.unowned_since: dict[Key, float] = {}
        self.catching_up = 0
        self.next_count_check = 0.0  # monotonic time of the next partition-count check
        self.trimmed = 0  # the changes topic's records before this offset are deleted
        self.restore_outcome = ""  # what fraudgraph_restore says (Topology.set_restore)
        self.blocked = False  # stage B is assigned here but cannot run (Topology.stage_b_blocked)
        self.blocked_retry = 0.0  # monotonic time of the next try

    def forget(self, keys: set[Key]) -> None:
        self.verified -= keys


class Topology:
    """The worker's Faust application, in named parts: the topics; ``send`` / ``publish`` (every send
    acknowledged, retried, never dropped); ``ensure`` / ``catch_up`` (a partition's state brought up to
    the offset its group delivers from); stage A's ``take`` (each batch of the intake), the agents
    ``graph_stage`` (stage B) and ``verdicts``; the rebalance signals; and the timers (``housekeeping``, ``audit_flush``,
    ``checkpoint``, ``audit_compact``, ``release_memory``), all wired to the app by ``_wire``."""

    def __init__(self, settings: Settings, pipeline: Pipeline, on_conflict: Callable[[str, int], None],
                 global_stage: GlobalStage, checkpoints: Store | None = None) -> None:
        self.settings, self.pipeline, self.on_conflict = settings, pipeline, on_conflict
        self.global_stage, self.checkpoints = global_stage, checkpoints
        self.app = faust.App(
            settings.app_id,
            broker=f"kafka://{settings.bootstrap}",
            broker_credentials=faust_credentials(settings),
            store="memory://",
            web_enabled=False,
            topic_partitions=settings.partitions,
            consumer_auto_offset_reset="earliest",
            producer_acks=-1,
            # A crashed worker's partitions are reassigned after 10 s, not Faust's default 60 s.
            broker_session_timeout=SESSION_TIMEOUT_SECONDS,
            broker_heartbeat_interval=3.0,
            # Static membership of the changes topic's group too (the input's is the intake's): a pod that
            # restarts within the session timeout keeps stage B without a rebalance.
            consumer_group_instance_id=f"{settings.app_id}-{settings.instance_id}" if settings.instance_id else None,
            # Faust's own files (nothing the worker needs back): per process, never on the shared audit volume
            datadir=str(Path(tempfile.gettempdir()) / f"fraudgraph-faust-{settings.app_id}-{os.getpid()}"),
        )
        raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
        self.events_topic = self.app.topic(settings.events_topic, **raw)
        self.changes_name = settings.changes_topic_name
        # Stage B's input: one partition (one owner, one order), no time or size limit (``trim_changes``).
        self.changes_topic = self.app.topic(self.changes_name, partitions=1, config=CHANGES_CONFIG, **raw)
        self.dlq_topic = self.app.topic(settings.dlq_topic, key_serializer="raw", value_serializer="raw")
        self.alerts_topic = self.app.topic(settings.alerts_topic, key_serializer="raw", value_serializer="raw")
        self.flagged_topic = self.app.topic(settings.flagged_topic, key_serializer="raw", value_serializer="raw")
        self.verdicts_topic = self.app.topic(settings.verdicts_topic, **raw)
        self.metrics = pipeline.metrics
        self.owned = Ownership()
        self.changes_key: Key = (self.changes_name, 0)
        # checkpoints read from the store for units assigned and not yet verified (one read serves them all,
        # for ADOPTABLE_SECONDS: a takeover's rebalances of the two groups come seconds apart). A candidate read
        # earlier is still a true prefix of its log: at worst more is re-read after it.
        self.adoptable: dict[str, list[Candidate]] = {}
        self.adoptable_at = 0.0
        # Held from a change of the state until what it emitted is published: a checkpoint is taken only
        # between two such steps, so it never covers an alert, dead letter or change batch not yet sent.
        self.step = asyncio.Lock()
        # Stage A's input, in batches, from a consumer of its own (streams/worker/intake.py)
        self.intake = Intake(settings, self.take, lambda: dict(pipeline.next_offsets))
        self.intake_committed: dict[Key, int | None] = {}  # input partition -> the offset the group delivers from
        self._wire()

    def _wire(self) -> None:
        app = self.app
        app.on_partitions_assigned.connect(self.on_assigned)
        app.on_partitions_revoked.connect(self.on_revoked)
        app.task(self.start_intake)
        app.on_before_shutdown.connect(self.stop_intake)
        app.agent(self.changes_topic, name="graph_stage")(self.graph_stage)
        app.agent(self.verdicts_topic, name="verdicts")(self.verdicts)
        app.timer(interval=1.0)(self.housekeeping)
        app.timer(interval=MEMORY_RELEASE_SECONDS)(self.release_memory)
        app.timer(interval=self.settings.audit_flush_seconds)(self.audit_flush)
        if self.checkpoints is not None and self.settings.checkpoint_seconds > 0:
            app.timer(interval=self.settings.checkpoint_seconds)(self.checkpoint)
        app.timer(interval=300.0)(self.audit_compact)

    @contextlib.asynccontextmanager
    async def stepping(self) -> AsyncIterator[None]:
        async with self.step:
            self.pipeline.step_open = True
            yield
            self.pipeline.step_open = False  # not reached when the step was cancelled half-way (a stop)

    async def send(self, topic: faust.TopicT, kind: str, key: bytes | None, value: bytes | None,
                   headers: list[tuple[str, bytes]] | None = None) -> None:
        """Send and wait for the broker's ack; retry with back-off until it succeeds."""
        delay = 0.5
        while True:
            try:
                fut = await topic.send(key=key, value=value, headers=headers)
                await fut
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every send failure is retried, never dropped
                if self.metrics is not None:
                    self.metrics.publish_errors.labels(kind).inc()
                log.error("send to %s failed, retrying in %.1fs: %s", topic.get_topic_name(), delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def publish(self, emitted: Emitted) -> None:
        for dead in emitted.dead:
            await self.send(self.dlq_topic, "dlq", dead.record.key, dead.value(), dead.headers())
            if self.metrics is not None:
                self.metrics.dead_letters.inc()
        for change in emitted.changes:
            await self.send(self.changes_topic, "changes", change.key, change.value, change.headers)
            if self.metrics is not None:
                self.metrics.change_records.labels("sent").inc()
        for update in emitted.alerts:
            await self.send(self.alerts_topic, "alerts", update.alert_id.encode(), alert_message(update))
            if self.pipeline.audit is not None:  # acknowledged: a restart will not send this version again
                self.pipeline.audit.add_publication(update.alert_id, update.version, time.time())
        if emitted.flagged:  # one record per account in a step: sent together, all acknowledged before the next step
            key = self.pipeline.feed_key
            await asyncio.gather(*(self.send(self.flagged_topic, "flagged", r.key(), encode(r, key))
                                   for r in emitted.flagged))

    async def ensure(self, key: Key, target: int) -> None:
        """(Holding the step lock) bring the state of ``key`` up to ``target``, the offset Faust
        delivers from, before its first record is handled after an assignment."""
        if key in self.owned.verified:
            return
        if key == self.changes_key and self.owned.blocked and time.monotonic() < self.owned.blocked_retry:
            return
        have = self.pipeline.next_offsets.get(key)
        if self.checkpoints is not None and (have is None or have < target):
            await self.adopt_checkpoint(key, have or 0)
            if key == self.changes_key and await self.stage_b_blocked(self.pipeline.next_offsets.get(key, 0)):
                return
        delay = 1.0
        while (have := self.pipeline.next_offsets.get(key, 0)) < target:
            try:
                await self.catch_up(key, have, target)
            except Exception as exc:  # noqa: BLE001 - the broker may be away; what was read is kept
                log.error("recovery of %s[%d] interrupted, retrying in %.0fs: %s", *key, delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        self.owned.verified.add(key)
        if key == self.changes_key:
            if self.metrics is not None:
                self.metrics.global_owner.set(1)
        else:
            self.pipeline.partition_input[key[1]] = time.time()  # the idle clock starts again at each assignment

    async def adopt_checkpoint(self, key: Key, have: int) -> None:
        """(Holding the step lock) put the newest checkpoint of ``key``'s unit in place of what this worker
        holds of it, when it covers more: a worker handed a partition or stage B starts from its previous
        owner's checkpoint, not from the beginning of the topic. A store that cannot be read means a longer
        catch-up, never a stop."""
        store, loop = self.checkpoints, asyncio.get_running_loop()
        assert store is not None
        unit = unit_of(key, self.settings.events_topic)
        started = time.monotonic()
        try:
            if unit not in self.adoptable or time.monotonic() - self.adoptable_at > ADOPTABLE_SECONDS:
                # one read for this unit and every other one this worker may be handed: all partitions and
                # stage B (a worker that takes one over usually takes several, and the read is the cost)
                units = sorted({unit, GLOBAL, *(window_unit(p) for p in range(self.pipeline.engine.partitions))})
                self.adoptable = await loop.run_in_executor(None, store.read, units)
                self.adoptable_at = time.monotonic()
            candidates = self.adoptable.pop(unit, [])
            end = (await loop.run_in_executor(None, end_offsets, self.settings, [key[0]])).get(key, 0)
        except Exception as exc:  # noqa: BLE001 - the store may be away: rebuild from the topic instead
            log.error(f"checkpoints of {unit} not readable from {store.describe()} ({exc}); "
                      "rebuilding it from the topic")
            self.set_restore("missing")
            return
        adopted, outcome = await loop.run_in_executor(
            None, choose, unit, candidates, self.pipeline.engine.config, self.pipeline.engine.partitions, key[0], end,
            have, store.key)
        if outcome != "held":
            self.set_restore(outcome)
        if adopted is None:
            if outcome not in ("held", "missing"):
                log.error(f"no usable checkpoint of {unit} ({outcome}): rebuilding it from the topic")
            return
        adopt(self.pipeline, adopted, key)
        if unit == GLOBAL:
            self.global_stage.reader = ChangeReader()  # a checkpoint is never taken mid-batch
            if self.pipeline.audit is not None:  # what the previous owner published (in the shared store) is not sent again
                published = await loop.run_in_executor(None, self.pipeline.audit.published_versions)
                for alert_id, version in published.items():
                    self.pipeline.published[alert_id] = max(version, self.pipeline.published.get(alert_id, 0))
        # one line per unit (formatted first: the log's repeat filter would fold the units' lines into one)
        age, took = max(0.0, time.time() - adopted.written_at), time.monotonic() - started
        log.warning(f"adopted the checkpoint {adopted.label} of {unit}: offset {adopted.offset} (was {have}), "
                    f"written {age:.0f}s ago, in {took:.1f}s")

    async def stage_b_blocked(self, have: int) -> bool:
        """Stage B holds less than the changes topic still has (no checkpoint could be adopted, and its owner
        deleted the records before its checkpoints): a rebuild from what is left would be a graph without
        its history, reusing cluster and alert ids — wrong state. So stage B does not run here: one log
        line, ``fraudgraph_stage_b_blocked`` 1 (a page), a retry every minute. Stage A goes on; the changes
        records wait uncommitted (``graph_stage``) and nothing trims the topic, so once a checkpoint can be
        adopted — the key, build or settings it was written with are back — they are applied and published:
        nothing is lost."""
        try:
            start = await asyncio.get_running_loop().run_in_executor(None, log_start, self.settings, self.changes_name)
        except Exception as exc:  # noqa: BLE001 - the broker may be away: decided at the next try
            log.warning("could not read where %s starts: %s", self.changes_name, exc)
            start = have
        blocked = have < start
        if blocked:
            self.owned.blocked_retry = time.monotonic() + BLOCKED_RETRY_SECONDS
            if not self.owned.blocked:
                log.critical(f"stage B cannot run: no checkpoint of it could be adopted ({self.owned.restore_outcome}; "
                             f"see above) and {self.changes_name} starts at offset {start}, its history before deleted. "
                             "Restore what the checkpoints were written with (the --checkpoint-key-file, the build, the "
                             "detection settings, the partition count), or start over with a new --app-id. Stage A goes "
                             "on; nothing is lost meanwhile; retrying every minute")
        elif self.owned.blocked:
            log.warning("stage B runs again: its checkpoint was adopted")
        self.owned.blocked = blocked
        if self.metrics is not None:
            self.metrics.stage_b_blocked.set(1 if blocked else 0)
        return blocked

    def set_restore(self, outcome: str) -> None:
        """``fraudgraph_restore``: 1 on the outcome of the last unit this process took, except that a refusal
        (corrupt, incompatible, forged) is not hidden by a later unit adopted or without a checkpoint."""
        refusal = ("corrupt", "incompatible", "forged")
        if self.owned.restore_outcome in refusal and outcome not in refusal:
            return
        self.owned.restore_outcome = outcome
        if self.metrics is not None:
            for name in OUTCOMES:
                self.metrics.restore.labels(name).set(1 if name == outcome else 0)

    def assigned(self) -> set[Key]:
        """The changes partition (Faust's group) and input partitions (the intake's) assigned to this worker."""
        try:
            changes = {(tp.topic, tp.partition) for tp in self.app.consumer.assignment() if tp.topic == self.changes_name}
        except Exception:  # noqa: BLE001 - no consumer yet
            changes = set()
        return changes | self.intake.assigned

    async def catch_up(self, key: Key, start: int, end: int) -> None:
        def handle(records: list[Record]) -> None:
            if key == self.changes_key:
                for record in records:
                    self.global_stage.apply(record)
            else:  # the change batches and dead letters were published by whoever read these first
                self.pipeline.handle(records)

        self.owned.catching_up += 1
        self.pipeline.recovering = True
        if self.metrics is not None:
            self.metrics.recovering.set(1)
        try:
            read = await asyncio.get_running_loop().run_in_executor(
                None, read_range, self.settings, key[0], key[1], start, end, handle)
            # every record of [start, end) the topic still holds was handled: the rest is gone (input past
            # its retention), so the state is as far as it can get
            if self.pipeline.next_offsets.get(key, 0) < end:
                self.pipeline.next_offsets[key] = end
        finally:
            self.owned.catching_up -= 1
            self.pipeline.end_recovery()
        if self.metrics is not None:
            (self.metrics.recovered_changes if key == self.changes_key else self.metrics.recovered_records).inc(read)

    async def on_assigned(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        self.owned.joined = True  # args[0]: the partitions assigned; each is checked before its first record
        self.owned.forget({(tp.topic, tp.partition) for tp in args[0]})

    async def on_revoked(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        self.owned.forget({(tp.topic, tp.partition) for tp in args[0]})

    async def start_intake(self) -> None:
        self.intake.start(asyncio.get_running_loop())

    async def stop_intake(self, sender: Any, /, *args: Any, **kwargs: Any) -> None:
        await self.intake.stop()

    async def take(self, batch: Batch) -> dict[int, int]:
        """Stage A: one batch of the input topic from the intake (``streams/worker/intake.py``); what it
        closes goes to the changes topic. Returns the offsets to commit: what the state now holds."""
        topic = self.settings.events_topic
        if batch.rebalance is not None:
            moved = batch.rebalance
            self.owned.forget(moved.revoked | set(moved.assigned))
            for key in moved.revoked - set(moved.assigned):
                self.intake_committed.pop(key, None)
            self.intake_committed.update(moved.assigned)
            self.owned.intake_joined = True
        if not batch.parts:
            return {}
        beyond = max(batch.parts) + 1
        if beyond > self.pipeline.engine.partitions:  # the topic grew under the engine: stop before applying
            problem = partition_count_problem(topic, beyond, self.pipeline.engine.partitions)
            self.on_conflict(problem or "", EXIT_OWNERSHIP)
            raise RuntimeError(problem)
        await self.audit_backpressure()
        async with self.stepping():
            for partition in sorted(batch.parts):
                await self.ensure((topic, partition), batch.parts[partition].offsets[0])
            await self.publish(self.pipeline.handle_partitions(topic, batch.parts))
        return {p: self.pipeline.next_offsets[(topic, p)] for p in batch.parts if (topic, p) in self.pipeline.next_offsets}

    async def audit_backpressure(self) -> None:
        """While the audit store cannot keep up (its flushes fail or lag), take no more input: the rows
        wait in memory only up to ``AUDIT_BACKLOG_ROWS``, the rest waits in Kafka."""
        audit = self.pipeline.audit
        warned = False
        while audit is not None and audit.pending() > self.settings.audit_backlog_rows:
            if not warned:
                log.warning("audit store %d rows behind: input paused until it catches up", audit.pending())
                warned = True
            try:
                await asyncio.get_running_loop().run_in_executor(None, self.pipeline.flush_audit)
            except OSError as exc:
                log.error("audit flush failed, will retry: %s", exc)
                await asyncio.sleep(1.0)

    async def graph_stage(self, stream: faust.StreamT[bytes]) -> None:
        """Stage B: the graph, clusters and alerts, from the changes topic."""
        async for event in stream.events():
            record = record_of(event.message)
            while True:
                async with self.stepping():
                    await self.ensure((record.topic, record.partition), record.offset)
                    if self.changes_key in self.owned.verified:
                        if fresh(self.pipeline, [record]):
                            emitted, outcome = self.global_stage.apply(record)
                            if outcome is not None and self.metrics is not None and not self.pipeline.recovering:
                                self.metrics.verdicts.labels(outcome).inc()
                            await self.publish(emitted)
                        break
                # stage B cannot run here (stage_b_blocked): the record waits, unacknowledged, so its offset is
                # not committed and whoever runs stage B next applies and publishes it
                await asyncio.sleep(1.0)

    async def verdicts(self, stream: faust.StreamT[bytes]) -> None:
        """Verdicts join stage B's input, so every rebuild applies them at the same place."""
        async for event in stream.events():
            message = event.message
            forwarded = verdict_record(message.key, message.value or b"")
            await self.send(self.changes_topic, "changes", forwarded.key, forwarded.value, forwarded.headers)

    async def housekeeping(self) -> None:
        if self.intake.failure is not None:  # stage A has no input: stop, so that a restart brings it back
            self.on_conflict(self.intake.failure, EXIT_FAILURE)
            return
        if time.monotonic() >= self.owned.next_count_check:  # the consumer's metadata refreshes only every few minutes
            self.owned.next_count_check = time.monotonic() + PARTITION_CHECK_SECONDS
            try:
                total = await asyncio.get_running_loop().run_in_executor(None, partition_count, self.settings)
            except Exception as exc:  # noqa: BLE001 - the broker may be away; checked again later
                log.warning("could not read the partition count of %s: %s", self.settings.events_topic, exc)
            else:
                problem = total and partition_count_problem(self.settings.events_topic, total, self.pipeline.engine.partitions)
                if problem:
                    self.on_conflict(problem, EXIT_OWNERSHIP)
                    return
        try:
            self.app.consumer.assignment()
        except Exception:  # noqa: BLE001 - no consumer yet
            return
        assigned = self.assigned()
        now = time.time()
        await self.release_unowned(assigned, now)
        unverified = sorted(assigned - self.owned.verified)
        if not unverified and self.adoptable:
            self.adoptable = {}  # every unit taken: the checkpoints read for them are not held on to
        if unverified:  # partitions with nothing new to deliver: check them against the committed offsets
            committed: dict[Key, int] = {}
            if self.changes_key in unverified:
                try:
                    committed = await asyncio.get_running_loop().run_in_executor(
                        None, committed_offsets, self.settings, [self.changes_name])
                except Exception as exc:  # noqa: BLE001 - the broker may be away; the next second tries again
                    log.warning("could not read the committed offsets: %s", exc)
                    return
            for key in unverified:  # input partitions: the offset the intake group delivers from
                if key != self.changes_key:
                    start = self.intake_committed.get(key)
                    committed[key] = start if start is not None else self.pipeline.next_offsets.get(key, 0)
            async with self.stepping():
                for key in unverified:
                    await self.ensure(key, committed.get(key, 0))
        async with self.stepping():
            for key in sorted(assigned & self.owned.verified):
                if key != self.changes_key and self.idle(key, now):
                    await self.publish(self.pipeline.flush_partition(key[1]))
            self.pipeline.refresh_gauges(self.changes_key in self.owned.verified)
        if self.metrics is not None:
            joined = self.owned.joined and self.owned.intake_joined
            waiting = assigned - self.owned.verified - ({self.changes_key} if self.owned.blocked else set())
            self.metrics.recovering.set(0 if joined and not waiting and not self.owned.catching_up else 1)
            self.metrics.global_owner.set(1 if self.changes_key in assigned and self.changes_key in self.owned.verified else 0)
            self.metrics.assigned_partitions.set(sum(1 for key in assigned if key[0] == self.settings.events_topic))
            if self.intake.assigned:
                self.metrics.consumer_lag.set(sum(max(0, high - self.pipeline.next_offsets.get(key, 0))
                                                  for key, high in self.intake.highwater.items()))
            lag = consumer_lag(self.app, self.pipeline, self.changes_name)
            self.metrics.changes_lag.set(lag or 0)

    def idle(self, key: Key, now: float) -> bool:
        """An input partition with nothing left to deliver and no input for ``--idle-flush-seconds``
        (not one whose records wait behind a slow step: that is lag, not idleness)."""
        partition = key[1]
        if partition in self.pipeline.idle_sent or now - self.pipeline.partition_input.get(partition, now) < self.settings.idle_flush_seconds:
            return False
        highwater = self.intake.highwater.get(key)
        return highwater is not None and self.pipeline.next_offsets.get(key, 0) >= highwater

    async def release_unowned(self, assigned: set[Key], now: float) -> None:
        """Drop the state of partitions another worker has owned for ``RELEASE_SECONDS`` (a rebalance
        that hands them straight back keeps it)."""
        held = {key for key in list(self.pipeline.next_offsets) if key[0] in (self.settings.events_topic, self.changes_name)}
        for key in held & assigned:
            self.owned.unowned_since.pop(key, None)
        for key in sorted(held - assigned):
            since = self.owned.unowned_since.setdefault(key, now)
            if now - since < RELEASE_SECONDS:
                continue
            async with self.stepping():
                if key == self.changes_key:
                    self.global_stage.reset()
                else:
                    self.pipeline.release_partition(key)
            self.owned.unowned_since.pop(key, None)
            log.warning("released the state of %s[%d]: another worker owns it", *key)

    async def release_memory(self) -> None:
        release_free_memory()  # the heap's free pages back to the OS (streams/runtime/allocator.py)

    async def audit_flush(self) -> None:
        try:  # in a thread: Parquet is written outside the GIL while the loop goes on
            await asyncio.get_running_loop().run_in_executor(None, self.pipeline.flush_audit)
        except OSError as exc:  # rows stay buffered; the next flush retries
            log.error("audit flush failed, will retry: %s", exc)

    def held_units(self, final: bool = False) -> list[tuple[str, Key]]:
        """The units this worker checkpoints: assigned to it, verified against its group's offset and held
        (``final``, at a graceful stop, when the assignment is being given up: every unit held — any
        checkpoint is a true prefix of its log, and a reader takes the one covering the most)."""
        keys = {key for key in self.pipeline.next_offsets if key[0] in (self.settings.events_topic, self.changes_name)}
        if not final:
            keys &= self.assigned() & self.owned.verified
        return sorted((unit_of(key, self.settings.events_topic), key) for key in keys)

    def capture_held(self, final: bool = False) -> list[tuple[str, bytes, int]]:
        """(Between two steps) each held unit's checkpoint and the offset it covers, after the audit flush."""
        self.pipeline.flush_audit()  # rows the state implies are written before a checkpoint says so
        key = self.checkpoints.key if self.checkpoints is not None else None
        return [(unit, *capture(self.pipeline, unit, log_key, signing_key=key))
                for unit, log_key in self.held_units(final)]

    async def checkpoint(self) -> None:
        store = self.checkpoints
        if store is None:
            return
        async with self.step:  # between two steps: everything the state emitted is published
            if self.pipeline.step_open or self.global_stage.mid_batch or self.owned.catching_up:
                return  # a step cut short (a stop), half a batch, or a catch-up: the next one
            started = time.monotonic()
            try:
                captured_units = self.capture_held()
            except Exception as exc:  # noqa: BLE001 - a failed checkpoint only makes the next restart longer
                log.error("checkpoint not taken: %s", exc)
                if self.metrics is not None:
                    self.metrics.checkpoints.labels("failed").inc()
                return
        if not captured_units:
            return
        captured = time.monotonic()
        loop = asyncio.get_running_loop()
        try:
            for unit, data, offset in captured_units:
                await loop.run_in_executor(None, store.save, unit, data, offset)
        except Exception as exc:  # noqa: BLE001 - the store may be away: detection goes on, the next one retries
            log.error("checkpoint not written to %s: %s", store.describe(), exc)
            if self.metrics is not None:
                self.metrics.checkpoints.labels("failed").inc()
            return
        if self.metrics is not None:
            self.metrics.checkpoints.labels("written").inc()
            self.metrics.last_checkpoint.set(time.time())
            self.metrics.checkpoint_seconds.labels("capture").set(captured - started)
            self.metrics.checkpoint_seconds.labels("write").set(time.monotonic() - captured)
            self.metrics.checkpoint_bytes.set(sum(len(data) for _unit, data, _offset in captured_units))
        await self.trim_changes(store)

    async def trim_changes(self, store: Store) -> None:
        """Stage B's owner, with checkpoints every worker can read: the changes topic before stage B's latest
        checkpoint is no longer needed by anyone — delete it, so the topic holds one checkpoint interval
        whatever the history. (The checkpoint before it stays in the store, but no longer has the changes
        after it: a stage B that must fall back to it waits instead of running on a gap — stage_b_blocked.
        A checkpoint's chunks are acknowledged before its manifest, so a torn write is never the latest.)"""
        floor = getattr(store, "floor", None)
        offset = floor(GLOBAL) if floor is not None and self.changes_key in self.owned.verified else None
        if offset is None or offset <= self.owned.trimmed:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(None, trim, self.settings, self.changes_name, offset)
        except Exception as exc:  # noqa: BLE001 - retried after the next checkpoint
            log.warning("could not delete %s before offset %d: %s", self.changes_name, offset, exc)
            return
        self.owned.trimmed = offset
        if self.metrics is not None:
            self.metrics.changes_start.set(offset)

    async def audit_compact(self) -> None:
        # One segment a second per table adds up: fold them (and apply retention) every 5 minutes. Stage B's
        # owner does it (it writes nearly all rows): workers sharing one store do not fold it twice.
        if self.pipeline.audit is not None and self.changes_key in self.owned.verified:
            try:
                self.pipeline.audit.compact(min_segments=50)
            except Exception as exc:  # noqa: BLE001 - compaction is an optimisation; never stop detection
                log.error("audit compaction failed: %s", exc)


def partition_count_problem(topic: str, total: int, engine_partitions: int) -> str | None:
    """Why the engine no longer fits the input topic (its partition count changed), or None."""
    if total == engine_partitions:
        return None
    return (f"{topic} now has {total} partitions, the engine was built for {engine_partitions}: restart the workers "
            "(each start checks its checkpoint against the partition count and rebuilds when it differs)")


def consumer_lag(app: faust.App, pipeline: Pipeline, topic: str) -> int | None:
    """Sum over assigned input partitions of (high watermark - next offset this worker will handle).

    Uses only Faust's public consumer API (assignment, highwater) and the offsets the pipeline has
    itself handled (or recovery rebuilt up to)."""
    try:
        consumer = app.consumer
        assigned = [tp for tp in consumer.assignment() if tp.topic == topic]
        if not assigned:
            return None
        total = 0
        for tp in assigned:
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            total += max(0, highwater - pipeline.next_offsets.get((tp.topic, tp.partition), 0))
        return total
    except Exception:  # noqa: BLE001 - lag is best effort before assignment
        return None
