"""Rebuild the engine's window after a restart, before the Faust agents start.

The graph lives in memory. On start the worker reads the input topic from the beginning up to the
consumer group's committed offsets (what was processed before the stop) and feeds it through the
same pipeline with publishing switched off; audit writes are idempotent, so rows a crash lost are
written and rows already there are not doubled. Faust then resumes at the committed offsets; the
few events processed after the last commit are delivered again and dropped as duplicates.
Retention on the input topic must cover the window plus lateness.
"""

from __future__ import annotations

import logging
import time

from kafka import KafkaConsumer, TopicPartition

from streams.kafka_security import kafka_python_args
from streams.pipeline import Pipeline, Record
from streams.settings import Settings

log = logging.getLogger("fraudgraph.recovery")


def input_partitions(settings: Settings) -> int:
    """Partitions of the input topic (each gets a window of its own); ``settings.partitions`` when the
    topic does not exist yet (the worker creates it with that many)."""
    probe = KafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False,
                          client_id="fraudgraph-recovery", **kafka_python_args(settings))
    try:
        partitions = probe.partitions_for_topic(settings.events_topic)
    finally:
        probe.close()
    return max(partitions) + 1 if partitions else settings.partitions


def committed_offsets(settings: Settings) -> dict[TopicPartition, int]:
    """The worker group's committed offsets on the input topic (a consumer that never joins the group)."""
    probe = KafkaConsumer(bootstrap_servers=settings.bootstrap, group_id=settings.app_id,
                          enable_auto_commit=False, client_id="fraudgraph-recovery", **kafka_python_args(settings))
    try:
        partitions = probe.partitions_for_topic(settings.events_topic) or set()
        out = {}
        for partition in sorted(partitions):
            tp = TopicPartition(settings.events_topic, partition)
            offset = probe.committed(tp)
            if offset is not None and offset > 0:
                out[tp] = offset
        return out
    finally:
        probe.close()


def rebuild(pipeline: Pipeline, settings: Settings, batch: int = 5000) -> int:
    """Replay the input topic up to the committed offsets into ``pipeline``; returns records read."""
    targets = committed_offsets(settings)
    if not targets:
        return 0
    started = time.monotonic()
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False,
                             group_id=None, client_id="fraudgraph-recovery", max_poll_records=batch,
                             **kafka_python_args(settings))
    try:
        consumer.assign(list(targets))
        consumer.seek_to_beginning(*targets)
        remaining = {tp for tp, end in targets.items() if consumer.position(tp) < end}
        read = 0
        while remaining:
            polled = consumer.poll(timeout_ms=1000)
            records: list[Record] = []
            for tp, messages in polled.items():
                end = targets[tp]
                for m in messages:
                    if m.offset < end:
                        records.append(Record(m.value, m.key, m.partition, m.offset, m.topic))
                if consumer.position(tp) >= end:
                    remaining.discard(tp)
            # Across partitions, keep event-time order roughly: the engine's lateness buffer does the rest.
            records.sort(key=lambda r: (r.offset, r.partition))
            if records:
                pipeline.handle(records)  # dead letters and alerts were published the first time
                read += len(records)
        log.warning("recovery: rebuilt the window from %d records in %.1fs", read, time.monotonic() - started)
        return read
    finally:
        consumer.close()


def reapply_verdicts(pipeline: Pipeline, db_path: str) -> int:
    """Verdicts consumed before a restart are not delivered again: re-apply those the audit store
    recorded, oldest first, to the rebuilt window (publishing stays off, as during the rebuild)."""
    from streams.audit import connect_read_only

    con = connect_read_only(db_path)
    try:
        rows = con.execute("SELECT cluster_id, verdict FROM verdicts ORDER BY decided_at, verdict_id").fetchall()
    finally:
        con.close()
    for cluster_id, verdict in rows:
        pipeline.apply_verdict(cluster_id, verdict)
    return len(rows)
