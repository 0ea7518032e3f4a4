"""The Faust app: agents that feed the engine from Kafka and publish what it finds.

One worker owns the graph: it consumes every partition of the input topic (the co-occurrence graph
is global, so it cannot be split by key across workers). A second worker in the same group would
silently split the graph, so a worker that finds it no longer owns every input partition stops
loudly (``fraudgraph_ownership_conflict``, a CRITICAL log line, exit status 3) instead of producing
partial clusters. Faust commits the offsets of processed events every few seconds; every
``--checkpoint-seconds`` the engine's state is checkpointed (``streams/checkpoints.py``); on restart
``streams.recovery`` restores it and re-reads the rest of the topic before the agents start.

Sending never drops: a dead letter that would not fit a request is truncated (with a header saying
so), and a failed send is retried with back-off while the batch's offsets stay uncommitted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

import faust
import orjson

from streams.checkpoints import CheckpointStore, capture
from streams.kafka_security import faust_credentials
from streams.pipeline import Emitted, Pipeline, Record, alert_message
from streams.settings import Settings
from streams.verdicts import refusal

log = logging.getLogger("fraudgraph")
EXIT_OWNERSHIP = 3  # exit status of a worker that found another member in its group
SESSION_TIMEOUT_SECONDS = 10.0  # a crashed worker's partitions are free again after this


def build_app(settings: Settings, pipeline: Pipeline, on_conflict: Callable[[str], None],
              verdict_key: bytes | None = None, checkpoints: CheckpointStore | None = None) -> faust.App:
    app = faust.App(
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
        datadir=str(settings.audit_db) + ".faust",
    )
    events_topic = app.topic(settings.events_topic, key_type=bytes, value_type=bytes,
                             key_serializer="raw", value_serializer="raw")
    dlq_topic = app.topic(settings.dlq_topic, key_serializer="raw", value_serializer="raw")
    alerts_topic = app.topic(settings.alerts_topic, key_serializer="raw", value_serializer="raw")
    verdicts_topic = app.topic(settings.verdicts_topic, key_serializer="raw", value_serializer="raw")
    metrics = pipeline.metrics
    # Held from a change of the engine's state until what it emitted is published: a checkpoint is
    # taken only between two such steps, so it never covers an alert or dead letter not yet sent.
    step = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def stepping() -> AsyncIterator[None]:
        async with step:
            pipeline.step_open = True
            yield
            pipeline.step_open = False  # not reached when the step was cancelled half-way (a stop)

    async def send(topic: faust.TopicT, kind: str, key: bytes | None, value: bytes | None,
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
                if metrics is not None:
                    metrics.publish_errors.labels(kind).inc()
                log.error("send to %s failed, retrying in %.1fs: %s", topic.get_topic_name(), delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def publish(emitted: Emitted) -> None:
        for dead in emitted.dead:
            await send(dlq_topic, "dlq", dead.record.key, dead.value(), dead.headers())
            if metrics is not None:
                metrics.dead_letters.inc()
        for update in emitted.alerts:
            await send(alerts_topic, "alerts", update.alert_id.encode(), alert_message(update))
            if pipeline.audit is not None:  # acknowledged: a restart will not send this version again
                pipeline.audit.add_publication(update.alert_id, update.version, time.time())

    @app.agent(events_topic)
    async def detect(stream: faust.StreamT[bytes]) -> None:
        async for batch in stream.take_events(  # type: ignore[attr-defined] # faust-streaming has it; its StreamT stub does not
                settings.batch_size, within=settings.batch_seconds):
            records = [Record(e.message.value, e.message.key, e.message.partition, e.message.offset,
                              e.message.topic) for e in batch]
            async with stepping():
                await publish(pipeline.handle(records))

    @app.agent(verdicts_topic)
    async def verdicts(stream: faust.StreamT[bytes]) -> None:
        async for value in stream:
            async with stepping():
                outcome, emitted = apply_verdict(pipeline, value, verdict_key)
                if metrics is not None:
                    metrics.verdicts.labels(outcome).inc()
                if emitted is not None:
                    await publish(emitted)

    @app.timer(interval=1.0)
    async def housekeeping() -> None:
        conflict = ownership_problem(app, settings.events_topic, pipeline.engine.partitions)
        if conflict:
            on_conflict(conflict)
            return
        if pipeline.engine.held_events:
            if time.time() - pipeline.last_input_wall >= settings.idle_flush_seconds:
                async with stepping():
                    await publish(pipeline.flush_held())
        pipeline.refresh_gauges()
        if metrics is not None:
            metrics.assigned_partitions.set(
                sum(1 for tp in app.consumer.assignment() if tp.topic == settings.events_topic))
            lag = consumer_lag(app, pipeline, settings.events_topic)
            if lag is not None:
                metrics.consumer_lag.set(lag)

    @app.timer(interval=settings.audit_flush_seconds)
    async def audit_flush() -> None:
        try:
            pipeline.flush_audit()
        except OSError as exc:  # rows stay buffered; the next flush retries
            log.error("audit flush failed, will retry: %s", exc)

    if checkpoints is not None and settings.checkpoint_seconds > 0:
        @app.timer(interval=settings.checkpoint_seconds)
        async def checkpoint() -> None:
            async with step:  # between two steps: everything the state emitted is published
                if pipeline.step_open:  # a step was cut short (the worker is stopping)
                    return
                started = time.monotonic()
                try:
                    pipeline.flush_audit()  # rows the state implies are on disk before it says so
                    data = capture(pipeline)
                except Exception as exc:  # noqa: BLE001 - a failed checkpoint only makes the next restart longer
                    log.error("checkpoint not taken: %s", exc)
                    if metrics is not None:
                        metrics.checkpoints.labels("failed").inc()
                    return
            captured = time.monotonic()
            try:
                await asyncio.get_running_loop().run_in_executor(None, checkpoints.save, data)
            except OSError as exc:
                log.error("checkpoint not written to %s: %s", checkpoints.directory, exc)
                if metrics is not None:
                    metrics.checkpoints.labels("failed").inc()
                return
            if metrics is not None:
                metrics.checkpoints.labels("written").inc()
                metrics.last_checkpoint.set(time.time())
                metrics.checkpoint_seconds.labels("capture").set(captured - started)
                metrics.checkpoint_seconds.labels("write").set(time.monotonic() - captured)
                metrics.checkpoint_bytes.set(len(data))

    @app.timer(interval=300.0)
    async def audit_compact() -> None:
        # One segment a second per table adds up: fold them (and apply retention) every 5 minutes.
        if pipeline.audit is not None:
            try:
                pipeline.audit.compact(min_segments=50)
            except Exception as exc:  # noqa: BLE001 - compaction is an optimisation; never stop detection
                log.error("audit compaction failed: %s", exc)

    return app


def apply_verdict(pipeline: Pipeline, value: bytes | None, key: bytes | None = None) -> tuple[str, Emitted | None]:
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


def ownership_problem(app: faust.App, topic: str, engine_partitions: int) -> str | None:
    """Why this worker does not own the whole input topic, or None (also while not yet assigned)."""
    try:
        assigned = {tp.partition for tp in app.consumer.assignment() if tp.topic == topic}
        total = app.consumer.topic_partitions(topic)
    except Exception:  # noqa: BLE001 - no consumer or metadata yet
        return None
    if not assigned or not total:
        return None
    if total != engine_partitions:
        return (f"{topic} now has {total} partitions, the engine was built for {engine_partitions}: restart the "
                "worker (it rebuilds a window per partition)")
    if len(assigned) >= total:
        return None
    return (f"this worker owns {len(assigned)} of {total} partitions of {topic}: another member joined group "
            f"{app.conf.id}; one worker must own the whole graph")


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


