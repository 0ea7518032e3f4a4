"""The Faust app: agents that feed the engine from Kafka and publish what it finds.

One worker owns the graph: it consumes every partition of the input topic (the co-occurrence graph
is global, so it cannot be split by key across workers). Faust commits the offsets of processed
events every few seconds; on restart ``streams.recovery`` rebuilds the window from the topic before
the agents start, so a crash loses nothing, and duplicate deliveries are dropped by event id.
"""

from __future__ import annotations

import logging
import time

import faust
import orjson

from streams.pipeline import Emitted, Pipeline, Record, alert_message
from streams.settings import Settings

log = logging.getLogger("fraudgraph")


def build_app(settings: Settings, pipeline: Pipeline, lag_probe=None) -> faust.App:
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap}",
        store="memory://",
        web_enabled=False,
        topic_partitions=settings.partitions,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # A crashed worker's partitions are reassigned after 10 s, not Faust's default 60 s.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
        datadir=str(settings.audit_db) + ".faust",
    )
    events_topic = app.topic(settings.events_topic, key_type=bytes, value_type=bytes,
                             key_serializer="raw", value_serializer="raw")
    dlq_topic = app.topic(settings.dlq_topic, key_serializer="raw", value_serializer="raw")
    alerts_topic = app.topic(settings.alerts_topic, key_serializer="raw", value_serializer="raw")
    verdicts_topic = app.topic(settings.verdicts_topic, key_serializer="raw", value_serializer="raw")

    async def publish(emitted: Emitted) -> None:
        for dead in emitted.dead:
            await dlq_topic.send(key=dead.record.key, value=dead.record.value, headers=dead.headers())
            if pipeline.metrics:
                pipeline.metrics.dead_letters.inc()
        for update in emitted.alerts:
            await alerts_topic.send(key=update.alert_id.encode(), value=alert_message(update))

    @app.agent(events_topic)
    async def detect(stream):  # noqa: ANN001 - Faust passes a StreamT
        async for batch in stream.take_events(settings.batch_size, within=settings.batch_seconds):
            records = [Record(e.message.value, e.message.key, e.message.partition, e.message.offset,
                              e.message.topic) for e in batch]
            await publish(pipeline.handle(records))

    @app.agent(verdicts_topic)
    async def verdicts(stream):  # noqa: ANN001
        async for value in stream:
            try:
                verdict = orjson.loads(value)
                emitted = pipeline.apply_verdict(str(verdict["cluster_id"]), str(verdict["verdict"]))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                log.warning("ignoring malformed verdict %r: %s", value[:200], exc)
                continue
            await publish(emitted)

    @app.timer(interval=1.0)
    async def housekeeping() -> None:
        if pipeline.engine.reorder and time.time() - pipeline.last_input_wall >= settings.idle_flush_seconds:
            await publish(pipeline.flush_held())
        pipeline.refresh_gauges()
        if lag_probe is not None and pipeline.metrics is not None:
            lag = lag_probe(app)
            if lag is not None:
                pipeline.metrics.consumer_lag.set(lag)

    @app.timer(interval=settings.audit_flush_seconds)
    async def audit_flush() -> None:
        try:
            pipeline.flush_audit()
        except OSError as exc:  # rows stay buffered; the next flush retries
            log.error("audit flush failed, will retry: %s", exc)

    @app.timer(interval=300.0)
    async def audit_compact() -> None:
        # One segment a second per table adds up: fold them (and apply retention) every 5 minutes.
        if pipeline.audit is not None:
            try:
                pipeline.audit.compact(min_segments=50)
            except Exception as exc:  # noqa: BLE001 - compaction is an optimisation; never stop detection
                log.error("audit compaction failed: %s", exc)

    return app


def consumer_lag(app: faust.App) -> int | None:
    """Sum over assigned partitions of (high watermark - position), from Faust's consumer."""
    try:
        consumer = app.consumer
        total = 0
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            position = consumer._read_offset.get(tp)  # noqa: SLF001 - Faust keeps no public accessor
            if highwater is None:
                continue
            total += max(0, highwater - ((position or -1) + 1))
        return total
    except Exception:  # noqa: BLE001 - lag is best effort before assignment
        return None
