"""Rebuild the engine's state after a restart, before the Faust agents start.

The graph lives in memory. On start the worker restores its newest checkpoint
(``streams/checkpoints.py``) and reads the input topic from the offsets it covers — or, without one,
from the beginning — up to the consumer group's committed offsets (what was processed before the
stop), feeding it through the same pipeline with publishing switched off; audit writes are
idempotent, so rows a crash lost are written and rows already there are not doubled. Faust then
resumes at the committed offsets; records a checkpoint already covers are skipped
(``Pipeline.covered``), and the few processed after the last commit are delivered again and dropped
as duplicates. Without checkpoints, retention on the input topic must cover the window plus
lateness; with them, it must cover the checkpoint interval (and the window, for the fallback).
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


def end_offsets(settings: Settings) -> dict[int, int]:
    """Per partition of the input topic, the offset after its last record."""
    probe = KafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False,
                          client_id="fraudgraph-recovery", **kafka_python_args(settings))
    try:
        partitions = probe.partitions_for_topic(settings.events_topic) or set()
        ends = probe.end_offsets([TopicPartition(settings.events_topic, p) for p in sorted(partitions)])
        return {tp.partition: int(offset) for tp, offset in ends.items()}
    finally:
        probe.close()


def rebuild(pipeline: Pipeline, settings: Settings, start: dict[tuple[str, int], int] | None = None,
            batch: int = 5000) -> int:
    """Replay the input topic up to the committed offsets into ``pipeline`` — from ``start`` (the
    offsets a restored checkpoint covers) or from the beginning; returns records read."""
    begin = start or {}
    targets = {tp: end for tp, end in committed_offsets(settings).items() if begin.get((tp.topic, tp.partition), 0) < end}
    if not targets:
        return 0
    started = time.monotonic()
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False,
                             group_id=None, client_id="fraudgraph-recovery", max_poll_records=batch,
                             **kafka_python_args(settings))
    try:
        consumer.assign(list(targets))
        for tp in targets:
            offset = begin.get((tp.topic, tp.partition), 0)
            if offset > 0:
                consumer.seek(tp, offset)
            else:
                consumer.seek_to_beginning(tp)
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
            if records:
                pipeline.handle(records)  # dead letters and alerts were published the first time
                read += len(records)
        log.warning("recovery: re-read %d records %s in %.1fs", read,
                    "after the checkpoint" if start else "from the beginning of the topic", time.monotonic() - started)
        return read
    finally:
        consumer.close()


def reapply_verdicts(pipeline: Pipeline, db_path: str) -> int:
    """Verdicts consumed before a restart are not delivered again: re-apply those the audit store
    recorded, oldest first, to the rebuilt window (publishing stays off, as during the rebuild)."""
    from streams.audit import connect_read_only

    con = connect_read_only(db_path)
    try:
        rows = con.execute("SELECT verdict_id, cluster_id, verdict FROM verdicts ORDER BY decided_at, verdict_id").fetchall()
    finally:
        con.close()
    applied = 0
    for verdict_id, cluster_id, verdict in rows:
        if verdict_id in pipeline.applied_verdicts:
            continue  # in the restored checkpoint already
        pipeline.apply_verdict(cluster_id, verdict, verdict_id)
        applied += 1
    return applied
