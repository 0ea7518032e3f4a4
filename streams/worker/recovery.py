"""Bring a stage's state up to the offset its consumer group committed, before it goes live.

The state lives in memory. On start the worker restores its newest checkpoint
(``streams/worker/checkpoints.py``) of each unit when it is assigned; without one it starts empty at offset 0. When a group assigns
the worker a partition (of the input topic: stage A; of the changes topic: stage B) whose state is
behind the group's committed offset — a fresh start, a checkpoint older than the last commit, or a
partition another worker went on with — ``read_range`` re-reads the gap with a plain consumer that
never joins the group, and the caller feeds it through the same pipeline with publishing off: what
those records produced was published by whoever processed them first. Audit writes are idempotent,
so rows a crash lost are written and rows already there are not doubled.

Retention: the input topic must keep the checkpoint interval (and the window, for a rebuild without
a checkpoint). The changes topic has no time limit: with checkpoints in Kafka, stage B's owner deletes
its records before stage B's latest checkpoint (``trim``) after each checkpoint; with
checkpoints on disk it is stage B's whole history, which a worker without them rebuilds from.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from kafka import KafkaConsumer, TopicPartition

from streams.kafka_security import kafka_python_args
from streams.runtime.pipeline import Record
from streams.settings import Settings

log = logging.getLogger("fraudgraph.recovery")


def partition_count(settings: Settings) -> int | None:
    """Partitions of the input topic now (None: the broker does not know the topic)."""
    probe = KafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False,
                          client_id="fraudgraph-recovery", **kafka_python_args(settings))
    try:
        partitions = probe.partitions_for_topic(settings.events_topic)
    finally:
        probe.close()
    return max(partitions) + 1 if partitions else None


def input_partitions(settings: Settings) -> int:
    """Partitions of the input topic (each gets a window of its own); ``settings.partitions`` when the
    topic does not exist yet (the worker creates it with that many)."""
    return partition_count(settings) or settings.partitions


def committed_offsets(settings: Settings, topics: list[str]) -> dict[tuple[str, int], int]:
    """The worker group's committed offsets on ``topics`` (a consumer that never joins the group);
    a partition without a commit is absent."""
    probe = KafkaConsumer(bootstrap_servers=settings.bootstrap, group_id=settings.app_id,
                          enable_auto_commit=False, client_id="fraudgraph-recovery", **kafka_python_args(settings))
    try:
        out = {}
        for topic in topics:
            for partition in sorted(probe.partitions_for_topic(topic) or set()):
                offset = probe.committed(TopicPartition(topic, partition))
                if offset is not None and offset > 0:
                    out[(topic, partition)] = offset
        return out
    finally:
        probe.close()


def end_offsets(settings: Settings, topics: list[str]) -> dict[tuple[str, int], int]:
    """Per partition of ``topics``, the offset after its last record."""
    probe = KafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False,
                          client_id="fraudgraph-recovery", **kafka_python_args(settings))
    try:
        tps = [TopicPartition(t, p) for t in topics for p in sorted(probe.partitions_for_topic(t) or set())]
        ends = probe.end_offsets(tps) if tps else {}
        return {(tp.topic, tp.partition): int(offset) for tp, offset in ends.items()}
    finally:
        probe.close()


def log_start(settings: Settings, topic: str, partition: int = 0) -> int:
    """The first offset ``topic[partition]`` still holds."""
    probe = KafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False,
                          client_id="fraudgraph-recovery", **kafka_python_args(settings))
    try:
        tp = TopicPartition(topic, partition)
        return int(probe.beginning_offsets([tp])[tp])
    finally:
        probe.close()


def read_range(settings: Settings, topic: str, partition: int, start: int, end: int,
               handle: Callable[[list[Record]], None], batch: int = 5000) -> int:
    """Feed records ``[start, end)`` of one partition to ``handle`` in batches; returns records read."""
    if start >= end:
        return 0
    started = time.monotonic()
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
                             group_id=None, client_id="fraudgraph-recovery", max_poll_records=batch,
                             fetch_max_bytes=16 * 1024 * 1024, max_partition_fetch_bytes=8 * 1024 * 1024,
                             **kafka_python_args(settings))
    tp = TopicPartition(topic, partition)
    read = 0
    try:
        consumer.assign([tp])
        first = consumer.beginning_offsets([tp])[tp]
        if first > start:  # deleted: input past its retention, or changes before stage B's kept checkpoints
            log.error("recovery: %s[%d] offsets %d..%d are no longer in the topic (deleted); the state is rebuilt "
                      "from offset %d", topic, partition, start, first, first)
        consumer.seek(tp, max(start, first))
        while consumer.position(tp) < end:
            records = [Record(m.value, m.key, m.partition, m.offset, m.topic, tuple(m.headers or ()))
                       for messages in consumer.poll(timeout_ms=1000).values() for m in messages if m.offset < end]
            if records:
                handle(records)
                read += len(records)
    finally:
        consumer.close()
    log.warning("recovery: re-read %d records of %s[%d] (offsets %d..%d) in %.1fs", read, topic, partition, start,
                end, time.monotonic() - started)
    return read


# No time or size limit: stage B's owner deletes what its checkpoints cover (``trim``); segments of at most
# 64 MiB and 10 minutes, so that deleted records leave the broker's disk too (a segment goes once all of it
# is deleted, and the active one only once it rolls).
CHANGES_CONFIG = {"retention.ms": "-1", "retention.bytes": "-1", "segment.bytes": str(64 * 2**20),
                  "segment.ms": str(10 * 60 * 1000)}


def trim(settings: Settings, topic: str, before: int, partition: int = 0) -> None:
    """Delete the records of ``topic[partition]`` before offset ``before`` (Kafka's DeleteRecords)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap, client_id="fraudgraph-trim", **kafka_python_args(settings))
    try:
        admin.delete_records({TopicPartition(topic, partition): before}, timeout_ms=30_000)
    finally:
        admin.close()


class TopologyError(Exception):
    pass


class BrokerUnreachable(Exception):
    """No Kafka broker answered at the bootstrap address within the wait."""


def wait_for_broker(settings: Settings, timeout_s: float) -> None:
    """Return once a broker answers at ``settings.bootstrap``; :class:`BrokerUnreachable` after
    ``timeout_s``. The client's own connection errors are not logged meanwhile: the caller says it once."""
    from kafka.errors import KafkaError

    client_log = logging.getLogger("kafka")
    level = client_log.level
    client_log.setLevel(logging.CRITICAL)
    try:
        probe = KafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False,
                              client_id="fraudgraph-probe", bootstrap_timeout_ms=int(timeout_s * 1000),
                              **kafka_python_args(settings))
        probe.close()
    except KafkaError as exc:
        raise BrokerUnreachable(f"no Kafka broker answered at {settings.bootstrap} within {timeout_s:.0f}s "
                                f"({type(exc).__name__}); start one or set --bootstrap") from None
    finally:
        client_log.setLevel(level)


def ensure_topics(settings: Settings) -> None:
    """Create the input topic (``--partitions`` partitions) and the changes topic (one partition, no
    time or size limit) unless they exist; refuse a changes topic with more than one partition
    (stage B must have one owner and one order). The topics the worker reads or writes besides —
    verdicts, alerts, dead letters — are created too where missing and allowed, so that a fresh broker
    starts without the client's "topic not found" errors (a principal that may not create them gets one
    warning; the broker or an operator creates them)."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    from streams.worker.checkpoint_topic import TOPIC_CONFIG

    name = settings.changes_topic_name
    others = (settings.verdicts_topic, settings.alerts_topic, settings.dlq_topic, settings.flagged_topic)
    checkpoints = (settings.checkpoints_topic,) if settings.checkpoint_store == "kafka" and settings.checkpoint_seconds > 0 else ()
    probe = KafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False,
                          client_id="fraudgraph-recovery", **kafka_python_args(settings))
    try:
        existing = {topic: probe.partitions_for_topic(topic) for topic in (settings.events_topic, name, *others, *checkpoints)}
    finally:
        probe.close()
    changes = existing[name]
    if changes and len(changes) != 1:
        raise TopologyError(f"{name} has {len(changes)} partitions; stage B needs exactly 1 (start over with "
                            "another --app-id, which re-reads the input topic from its beginning)")
    wanted = [NewTopic(topic, num_partitions=count, replication_factor=-1, topic_configs=config)
              for topic, count, config in ((settings.events_topic, settings.partitions, {}),
                                           (name, 1, CHANGES_CONFIG),
                                           *((topic, 1, TOPIC_CONFIG) for topic in checkpoints))
              if not existing[topic]]
    compacted = {"cleanup.policy": "compact"}  # the flagged-accounts feed: the latest record per account
    optional = [NewTopic(topic, num_partitions=1 if topic == settings.verdicts_topic else settings.partitions,
                         replication_factor=-1, topic_configs=compacted if topic == settings.flagged_topic else {})
                for topic in dict.fromkeys(others) if not existing[topic]]
    if not wanted and not optional:
        return
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap, client_id="fraudgraph-topics",
                             **kafka_python_args(settings))
    try:
        for topic in wanted:
            try:
                admin.create_topics([topic])
            except TopicAlreadyExistsError:
                pass  # another worker created it first
        for topic in optional:
            try:
                admin.create_topics([topic])
            except TopicAlreadyExistsError:
                pass
            except KafkaError as exc:
                log.warning("topic %s does not exist and could not be created (%s): create it, or let the broker "
                            "create it on first use", topic.name, type(exc).__name__)
    finally:
        admin.close()
