"""Which stage limits the partitioned topology: stage A (the partitions' windows) and stage B (the
graph) timed apart on the same events, in one process, with the batches crossing as bytes.

    .venv/bin/python -m tests.benchmarks.stages [--benign 70000] [--days 3] [--partitions 4] [--out RESULTS.md]

The simulator's stream (the speed benchmark's) is split by account over ``--partitions`` windows,
fed 2,000 events at a time (the worker's batch); each window's batches are serialised
(``Batch.to_bytes``) — stage A's time. Stage B decodes them and applies the ticks — its time. Stage
A's cost divides over the workers; stage B's does not: input events / stage B seconds is the input
rate at which stage B would be saturated.
"""

from __future__ import annotations

import argparse
import gzip
import time
import zlib

import orjson

from graph import DetectionConfig, DetectionEngine, _kernel
from tests.benchmarks.restart import emit, machine
from tests.benchmarks.speed import stream


def measure(lines: list[bytes], partitions: int) -> dict[str, float]:
    config = DetectionConfig(window_seconds=86400.0)
    stage_a = DetectionEngine(config, clock=lambda: 0.0, partitions=partitions, split=True)
    stage_b = DetectionEngine(config, clock=lambda: 0.0, partitions=partitions, split=True)
    queues: list[list[bytes]] = [[] for _ in range(partitions)]
    for line in lines:
        account = orjson.loads(line)["account_id"]
        queues[zlib.crc32(account.encode()) % partitions].append(line)
    a_seconds = b_seconds = 0.0
    batches = nbytes = alerts = 0
    positions = [0] * partitions
    peak = (0, 0, 0)
    while any(positions[p] < len(queues[p]) for p in range(partitions)):
        for p in range(partitions):
            chunk = queues[p][positions[p]:positions[p] + 2000]
            if not chunk:
                continue
            positions[p] += len(chunk)
            started = time.perf_counter()
            stage_a.feed_json(chunk, list(range(len(chunk))), lambda i: None, partition=p)
            sent = [b.to_bytes() for b in stage_a.take_batches(p)]
            applied = time.perf_counter()
            for data in sent:
                stage_b.receive(p, _kernel.Batch.from_bytes(data))
            alerts += len(stage_b.release().alerts)
            done = time.perf_counter()
            a_seconds += applied - started
            b_seconds += done - applied
            batches += len(sent)
            nbytes += sum(len(d) for d in sent)
        links = stage_a.stats()["links"]
        if links > peak[0]:  # the kernels' own heap accounting when live links peak, per stage
            peak = (links, stage_a.heap_bytes()["window"], stage_b.heap_bytes()["graph"])
    return {"events": len(lines), "a_s": a_seconds, "b_s": b_seconds, "batches": batches, "bytes": nbytes,
            "alerts": alerts, "links": peak[0], "a_heap": peak[1] / max(peak[0], 1), "b_heap": peak[2] / max(peak[0], 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benign", type=int, default=70000)
    parser.add_argument("--days", type=float, default=3)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    path, _total = stream(args.benign, 1.0, args.days, 11)
    with gzip.open(path, "rb") as handle:
        lines = [line for line in handle.read().splitlines() if line]
    r = measure(lines, args.partitions)
    text = "\n".join([
        f"## Stage A vs stage B ({machine()})", "",
        f"{r['events']:,} events of the {args.days:g}-day simulated stream over {args.partitions} windows, "
        f"{r['batches']:,} change batches ({r['bytes'] / 2**20:.1f} MiB serialised), {r['alerts']} alert updates.", "",
        f"| stage | seconds | input events/s it sustains | scales with workers | kernel heap per live link at the "
        f"peak ({r['links']:,} links) |",
        "|---|---:|---:|---|---:|",
        f"| A: decode, dedupe, order, windows, batches to bytes | {r['a_s']:.1f} | {r['events'] / r['a_s']:,.0f} | "
        f"yes (by input partition) | {r['a_heap']:.0f} B |",
        f"| B: batches from bytes, graph, clusters, scoring, alerts | {r['b_s']:.1f} | {r['events'] / r['b_s']:,.0f} | "
        f"no (one owner) | {r['b_heap']:.0f} B |",
        ""])
    emit(text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
