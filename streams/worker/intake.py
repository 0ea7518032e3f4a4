"""Stage A's input in batches: the account-events topic read by a librdkafka consumer (confluent-kafka)
at the rate the engine takes it, not one Faust event at a time.

Faust hands an agent one record at a time (an Event and a Message object each, a queue hop, an ack):
measured here, a Faust agent that only counts records tops out near 10k records/s, twenty times below
the engine. So the worker stays a Faust application — its agents for the changes and verdicts topics,
its timers, its producer and rebalance signals — but the input topic is read by its own consumer:

* **A thread of its own** owns the consumer (librdkafka's objects are touched from one thread):
  ``consume(batch_size, batch_seconds)`` returns at once when a batch is full and after
  ``--batch-seconds`` with whatever came (a trickle is not held for a batch to fill). The batch is
  grouped by partition — values, offsets and the client's message objects, no per-record object of
  ours — and handed to the event loop, where it is applied under the worker's step lock like any other
  step (``Topology.take``): each partition brought up to its first offset (``ensure``), the values
  decoded and fed per partition, and everything they produced (change batches, dead letters, alerts)
  published and acknowledged.
* **Offsets are committed only after that**, from the thread, synchronously: a crash re-reads at
  most the batch in flight, and the state skips what it already holds.
* **Two batches at most**: the thread fetches the next batch while the loop applies the one before,
  and hands it over only once that one is applied and committed (a revoked partition's batch is
  finished and committed before the partition goes). So memory is bounded by two batches plus
  librdkafka's prefetch queue
  (``queued.max.messages.kbytes``, ``PREFETCH_KIB``), whatever is slower downstream — stage B, the
  broker or the audit store (``Topology.take`` also waits while the audit store holds more than
  ``--audit-backlog-rows`` unwritten rows).
* **Its own consumer group**, ``<app-id>-intake``: Faust's group speaks Faust's assignor protocol,
  which librdkafka does not, so the input topic's partitions are spread over the workers by this
  group (same session timeout and heartbeat as Faust's). Rebalances reach the loop as events:
  revoked partitions are forgotten, assigned ones are checked against the offset the group delivers
  from before their first record (``ensure``), also when nothing new arrives on them. A partition
  the group has no offset for starts where this worker's state (a checkpoint) ends, else at the
  beginning.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from streams.kafka_security import librdkafka_config
from streams.runtime.pipeline import Part
from streams.settings import Settings

log = logging.getLogger("fraudgraph")

PREFETCH_KIB = 16 * 1024  # librdkafka's prefetch queue per consumer (its default is 64 MiB)
MAX_BATCH = 50_000  # records per batch at most, whatever --batch-size says (bounds one batch's memory)
Key = tuple[str, int]


@dataclass
class Rebalance:
    """What the group changed since the last batch: partitions revoked, and partitions assigned with
    the offset the group delivers them from (None: the group has no offset; reading starts where the
    state ends, or at the beginning)."""

    revoked: set[Key] = field(default_factory=set)
    assigned: dict[Key, int | None] = field(default_factory=dict)


@dataclass
class Batch:
    parts: dict[int, Part]
    rebalance: Rebalance | None


class Intake:
    """The input topic's consumer thread. ``take`` (a coroutine on the worker's loop) applies each
    batch and returns the next offset per partition to commit."""

    def __init__(self, settings: Settings, take: Callable[[Batch], Coroutine[Any, Any, dict[int, int]]],
                 state_offsets: Callable[[], dict[Key, int]]) -> None:
        self.settings = settings
        self.topic = settings.events_topic
        self.take = take
        self.state_offsets = state_offsets  # what the worker's state holds: where an uncommitted partition starts
        self.batch_size = max(1, min(settings.batch_size, MAX_BATCH))
        self.assigned: frozenset[Key] = frozenset()  # read by the loop; replaced whole by the thread
        self.highwater: dict[Key, int] = {}  # the same
        self.started = threading.Event()
        self._stop = threading.Event()
        self._events: deque[Rebalance] = deque()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: concurrent.futures.Future[dict[int, int]] | None = None  # the batch the loop applies
        self.failure: str | None = None  # why the thread ended when nobody asked it to (the worker then exits)

    # -- life cycle (called on the loop) ----------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="fraudgraph-intake", daemon=True)
        self._thread.start()

    async def stop(self, timeout: float = 30.0) -> None:
        """Finish the batch in flight, commit it and leave the group."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, thread.join, timeout)

    # -- the thread ---------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """librdkafka's settings for the input consumer.

        >>> from streams.settings import Settings
        >>> async def take(batch): return {}
        >>> Intake(Settings(app_id="fg", instance_id="fraudgraph-worker-1"), take, dict).config()["group.instance.id"]
        'fg-fraudgraph-worker-1'
        >>> "group.instance.id" in Intake(Settings(), take, dict).config()
        False
        """
        s = self.settings
        static = {"group.instance.id": f"{s.app_id}-{s.instance_id}"} if s.instance_id else {}
        return {
            **static,
            **librdkafka_config(s),
            "group.id": f"{s.app_id}-intake",
            "client.id": f"{s.app_id}-intake",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10_000,  # a dead worker's partitions move after 10 s, as in Faust's group
            "heartbeat.interval.ms": 3_000,
            "queued.max.messages.kbytes": PREFETCH_KIB,
            "fetch.max.bytes": 16 * 1024 * 1024,
            "max.partition.fetch.bytes": 4 * 1024 * 1024,
            "enable.partition.eof": False,
        }

    def _run(self) -> None:
        try:
            consumer = Consumer(self.config(), logger=logging.getLogger("fraudgraph.intake.client"))
        except KafkaException as exc:
            self.failure = f"the input consumer could not start: {exc}"
            return
        try:
            consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                               on_lost=self._on_revoke)
            self.started.set()
            while not self._stop.is_set():
                # the next batch is fetched while the loop applies the one before (librdkafka works
                # outside the GIL): the thread waits for that one only after this consume
                messages = consumer.consume(self.batch_size, self.settings.batch_seconds)
                parts = self._group(messages)
                rebalance = self._rebalance()
                self._watermarks(consumer)
                if not self._finish(consumer):
                    break
                if parts or rebalance is not None:
                    assert self._loop is not None
                    self._pending = asyncio.run_coroutine_threadsafe(self.take(Batch(parts, rebalance)), self._loop)
            self._finish(consumer)
        except Exception as exc:  # noqa: BLE001 - e.g. a fatal client error: the worker stops and is restarted
            self.failure = f"the input consumer failed: {type(exc).__name__}: {exc}"
        finally:
            try:
                consumer.close()  # leaves the group: the partitions move at once, not after the session timeout
            except (KafkaException, RuntimeError) as exc:
                log.warning("input consumer close: %s", exc)

    def _finish(self, consumer: Consumer) -> bool:
        """Wait for the batch the loop is applying, then commit what it leaves the state holding; False
        when it was not applied (the loop is stopping, or failed: its offsets stay uncommitted)."""
        pending, self._pending = self._pending, None
        if pending is None:
            return True
        try:
            done = pending.result()
        except BaseException as exc:  # noqa: BLE001 - cancelled by a stop, or failed
            if not self._stop.is_set():
                self.failure = f"an input batch was not applied ({type(exc).__name__}: {exc}); its offsets stay uncommitted"
            return False
        if done:
            self._commit(consumer, done)
        return True

    def _group(self, messages: list[Any]) -> dict[int, Part]:
        parts: dict[int, Part] = {}
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("input consumer: %s", error)
                continue
            partition = message.partition()
            part = parts.get(partition)
            if part is None:
                part = parts[partition] = Part()
            part.values.append(message.value())
            part.offsets.append(message.offset())
            part.sources.append(message)
        return parts

    def _commit(self, consumer: Consumer, offsets: dict[int, int]) -> None:
        try:
            consumer.commit(offsets=[TopicPartition(self.topic, p, o) for p, o in sorted(offsets.items())],
                            asynchronous=False)
        except KafkaException as exc:  # e.g. a rebalance under way: the next commit carries these offsets too
            log.warning("input offsets not committed yet (%s); the next batch commits them", exc.args[0])

    def _watermarks(self, consumer: Consumer) -> None:
        highwater = {}
        for key in self.assigned:
            try:
                _low, high = consumer.get_watermark_offsets(TopicPartition(*key), cached=True)
            except KafkaException:
                continue
            if high is not None and high >= 0:
                highwater[key] = high
        self.highwater = highwater

    # -- rebalance callbacks (inside consume(), on the thread) -------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        try:
            committed = consumer.committed(partitions, timeout=10.0)
        except KafkaException as exc:
            log.warning("input consumer: committed offsets unknown (%s): reading from the state's end", exc)
            committed = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
        held = self.state_offsets()
        event = Rebalance()
        start = []
        for tp in committed:
            key = (tp.topic, tp.partition)
            offset = tp.offset if tp.offset is not None and tp.offset >= 0 else None
            event.assigned[key] = offset
            begin = offset if offset is not None else held.get(key, OFFSET_BEGINNING)
            start.append(TopicPartition(tp.topic, tp.partition, begin))
        consumer.assign(start)
        self.assigned = self.assigned | set(event.assigned)
        self._events.append(event)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._finish(consumer)  # the batch in flight is applied and committed before its partitions go
        keys = {(tp.topic, tp.partition) for tp in partitions}
        self.assigned = self.assigned - keys
        self._events.append(Rebalance(revoked=keys))
        consumer.unassign()

    def _rebalance(self) -> Rebalance | None:
        if not self._events:
            return None
        merged = Rebalance()
        while self._events:
            event = self._events.popleft()
            for key in event.revoked:
                merged.assigned.pop(key, None)
            merged.revoked |= event.revoked
            merged.assigned.update(event.assigned)
        return merged
