"""The same events spread over 1, 2 or 4 input partitions, consumed in any interleaving of the
partitions (each partition in its own order, as Kafka delivers them), give the same alerts, versions
and lineage: each partition has its own window and watermark, and the global graph applies a tick
only once every partition has closed it (graph/ticks.py)."""

from __future__ import annotations

import random
import zlib

import orjson
import pytest

from graph import DetectionConfig, DetectionEngine
from streams.dev.simulate import SimConfig, default_rings, generate


@pytest.fixture(scope="module")
def stream() -> list[dict]:
    events, _labels = generate(SimConfig(seed=11, benign_accounts=1500, days=2, rings=default_rings(0.06, None)))
    return list(events)


def config() -> DetectionConfig:
    return DetectionConfig(window_seconds=86400.0, tick_seconds=60.0, allowed_lateness_seconds=300.0)


def run(stream: list[dict], partitions: int, seed: int) -> tuple[list[tuple], list[tuple], dict]:
    engine = DetectionEngine(config(), clock=lambda: 0.0, partitions=partitions)
    queues: list[list[bytes]] = [[] for _ in range(partitions)]
    for event in stream:
        queues[zlib.crc32(event["account_id"].encode()) % partitions].append(orjson.dumps(event))
    rng = random.Random(seed)
    alerts, lineage = [], []

    def collect(out):
        alerts.extend((a.alert_id, a.version, a.action, a.severity, a.member_count, a.members_added, a.detected_at,
                       a.alerted_at) for a in out.alerts)
        lineage.extend((e.cluster_id, e.kind, e.at, e.size, e.other) for e in out.lineage)

    def fallback(_i):
        raise AssertionError("the simulator's events take the kernel's fast path")

    positions = [0] * partitions
    while any(positions[p] < len(queues[p]) for p in range(partitions)):
        p = rng.choice([q for q in range(partitions) if positions[q] < len(queues[q])])
        n = rng.randint(1, 3000)  # a fetch: up to a few thousand records of one partition
        chunk = queues[p][positions[p]:positions[p] + n]
        positions[p] += len(chunk)
        collect(engine.process_json(chunk, list(range(len(chunk))), fallback, partition=p))
    collect(engine.flush())
    return alerts, lineage, engine.counters


def test_partitions_and_their_interleaving_do_not_change_the_answer(stream):
    alerts, lineage, counters = run(stream, 1, 0)
    assert len({a[0] for a in alerts}) >= 5 and any(k == "merged" for _c, k, *_ in lineage)
    for partitions, seed in ((2, 1), (4, 2), (4, 3)):
        got_alerts, got_lineage, got_counters = run(stream, partitions, seed)
        assert got_alerts == alerts, f"{partitions} partitions, interleaving {seed}"
        assert got_lineage == lineage
        assert got_counters["late"] <= counters["late"], "a partition is never late against another"


def run_split(stream: list[dict], partitions: int, seed: int) -> tuple[list[tuple], list[tuple]]:
    """Stage A and stage B as two processes would run them: stage A's batches travel as bytes, arrive
    in an interleaving of the partitions (each in its own order), and some are sent twice (a worker
    that crashed after sending re-sends them)."""
    stage_a = DetectionEngine(config(), clock=lambda: 0.0, partitions=partitions, split=True)
    stage_b = DetectionEngine(config(), clock=lambda: 0.0, partitions=partitions, split=True)
    queues: list[list[bytes]] = [[] for _ in range(partitions)]
    for event in stream:
        queues[zlib.crc32(event["account_id"].encode()) % partitions].append(orjson.dumps(event))
    rng = random.Random(seed)
    alerts, lineage = [], []
    sent: list[tuple[int, bytes]] = []  # the changes log
    positions = [0] * partitions
    while any(positions[p] < len(queues[p]) for p in range(partitions)):
        p = rng.choice([q for q in range(partitions) if positions[q] < len(queues[q])])
        chunk = queues[p][positions[p]:positions[p] + rng.randint(1, 3000)]
        positions[p] += len(chunk)
        stage_a.feed_json(chunk, list(range(len(chunk))), lambda i: None, partition=p)
        batches = [b.to_bytes() for b in stage_a.take_batches(p)]
        sent.extend((p, b) for b in batches)
        if batches and rng.random() < 0.2:
            sent.extend((p, b) for b in batches[-2:])  # sent again
    for p in range(partitions):
        stage_a.flush_partition(p)
        sent.extend((p, b.to_bytes()) for b in stage_a.take_batches(p))
    from graph import _kernel
    duplicates = 0
    for p, data in sent:
        duplicates += not stage_b.receive(p, _kernel.Batch.from_bytes(data))
        out = stage_b.release()
        alerts.extend((a.alert_id, a.version, a.action, a.severity, a.member_count, a.members_added, a.detected_at,
                       a.alerted_at) for a in out.alerts)
        lineage.extend((e.cluster_id, e.kind, e.at, e.size, e.other) for e in out.lineage)
    for p in range(partitions):
        stage_b.receive_idle(p)
    out = stage_b.release()
    alerts.extend((a.alert_id, a.version, a.action, a.severity, a.member_count, a.members_added, a.detected_at,
                   a.alerted_at) for a in out.alerts)
    lineage.extend((e.cluster_id, e.kind, e.at, e.size, e.other) for e in out.lineage)
    assert duplicates > 0, "the run re-sent some batches"
    return alerts, lineage


def test_split_stages_with_batches_sent_twice_give_the_answer_of_one_process(stream):
    alerts, lineage, _counters = run(stream, 1, 0)
    for partitions, seed in ((1, 4), (2, 5), (4, 6)):
        got_alerts, got_lineage = run_split(stream, partitions, seed)
        assert got_alerts == alerts, f"split over {partitions} partition(s)"
        assert got_lineage == lineage
