"""Engine speed and memory at 1x, 2x and 4x traffic (replay path, no Kafka).

    .venv/bin/python -m tests.benchmarks.speed [--base-benign 25000] [--base-ring-scale 0.25] [--scales 1,2,4]

Each scale runs in a fresh process (so memory is its own): simulated traffic is written to JSON Lines,
then streamed back through decode + engine in batches of 5,000. Reported: events/s through the engine
(decode timed apart), per-tick re-clustering time of the dirty region (p50/p95/max over ticks that had
work) against one full Leiden and one full from-scratch recompute of the same final graph, detection
lag in event time (event that made a cluster alert-worthy -> alerting tick), wall time to process the
batch holding that event, and resident memory per million live links.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def one_scale(benign: int, ring_scale: float, seed: int) -> dict:
    import igraph

    from graph import DetectionConfig, DetectionEngine
    from streams.contract import decode_event
    from streams.simulate import SimConfig, default_rings, generate

    workdir = Path(tempfile.mkdtemp(prefix="fg-speed-"))
    path = workdir / "events.jsonl"
    stream, _labels = generate(SimConfig(seed=seed, benign_accounts=benign, rings=default_rings(ring_scale)))
    with open(path, "wb") as handle:
        for event in stream:
            handle.write(orjson.dumps(event) + b"\n")
    del stream, _labels

    engine = DetectionEngine(DetectionConfig(), clock=time.time)
    engine.tick_timings = []
    base_rss = rss_bytes()
    decode_s = engine_s = 0.0
    events = 0
    lags: list[float] = []
    wall_latency: list[float] = []
    peak_links = 0
    batch: list = []

    def push(batch_events: list) -> None:
        nonlocal engine_s, peak_links
        t = time.perf_counter()
        out = engine.process(batch_events)
        spent = time.perf_counter() - t
        engine_s += spent
        for update in out.alerts:
            if update.action in ("opened", "escalated"):
                lags.append(update.alerted_at - update.detected_at)
                wall_latency.append(spent)
        peak_links = max(peak_links, engine.window.link_count)

    with open(path, "rb") as handle:
        for line in handle:
            t = time.perf_counter()
            batch.append(decode_event(line))
            decode_s += time.perf_counter() - t
            if len(batch) >= 5000:
                events += len(batch)
                push(batch)
                batch = []
    if batch:
        events += len(batch)
        push(batch)
    live_links = engine.window.link_count
    rss = rss_bytes() - base_rss
    t = time.perf_counter()
    engine.flush()
    engine_s += time.perf_counter() - t

    # The same final graph, clustered from scratch: components, and a full Leiden on the binding graph.
    t = time.perf_counter()
    engine.full_recompute_partition()
    full_components_s = time.perf_counter() - t
    bound = engine.binding.binding
    index: dict[str, int] = {}
    edges = []
    for entity in bound:
        e = index.setdefault(entity, len(index))
        for account in engine.window.members.get(entity, ()):
            edges.append((index.setdefault(account, len(index)), e))
    for account, entities in engine.window.links_of.items():  # the rest of the window too
        a = index.setdefault(account, len(index))
        for entity in entities:
            if entity not in bound:
                edges.append((a, index.setdefault(entity, len(index))))
    graph = igraph.Graph(n=len(index), edges=edges)
    igraph.set_random_number_generator(random.Random(7))
    t = time.perf_counter()
    graph.community_leiden(objective_function="modularity", n_iterations=2)
    full_leiden_s = time.perf_counter() - t

    ticks = sorted(engine.tick_timings)
    path.unlink()
    workdir.rmdir()
    return {
        "benign": benign, "ring_scale": ring_scale, "events": events,
        "engine_events_per_s": events / engine_s, "decode_us": decode_s / events * 1e6,
        "end_to_end_events_per_s": events / (engine_s + decode_s),
        "ticks_with_work": len(ticks),
        "tick_p50_ms": _q(ticks, 0.5) * 1e3, "tick_p95_ms": _q(ticks, 0.95) * 1e3, "tick_max_ms": ticks[-1] * 1e3,
        "full_leiden_s": full_leiden_s, "full_graph_nodes": graph.vcount(), "full_graph_edges": graph.ecount(),
        "full_components_s": full_components_s,
        "lag_p50_s": _q(sorted(lags), 0.5), "lag_p95_s": _q(sorted(lags), 0.95),
        "wall_batch_p50_ms": _q(sorted(wall_latency), 0.5) * 1e3, "wall_batch_p95_ms": _q(sorted(wall_latency), 0.95) * 1e3,
        "live_links": live_links, "peak_links": peak_links, "rss_mb": rss / 2**20,
        "bytes_per_live_link": rss / max(1, live_links),
        "alerts": len(lags),
    }


def _q(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-benign", type=int, default=25_000)
    parser.add_argument("--base-ring-scale", type=float, default=0.25)
    parser.add_argument("--scales", default="1,2,4")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", help="append the table to this markdown file")
    parser.add_argument("--one", nargs=2, metavar=("BENIGN", "RING_SCALE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one_scale(int(args.one[0]), float(args.one[1]), args.seed)))
        return 0
    results = []
    for scale in (int(s) for s in args.scales.split(",")):
        benign, rings = args.base_benign * scale, args.base_ring_scale * scale
        proc = subprocess.run([sys.executable, "-m", "tests.benchmarks.speed", "--one", str(benign), str(rings),
                               "--seed", str(args.seed)], capture_output=True, text=True, check=True)
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        result["scale"] = scale
        results.append(result)
        print(json.dumps(result), flush=True)
    rows = [
        f"### Speed and memory — {', '.join(str(r['scale']) + 'x' for r in results)} traffic",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. Command: "
        f"`python -m tests.benchmarks.speed --base-benign {args.base_benign} --base-ring-scale {args.base_ring_scale} "
        f"--scales {args.scales}`. Engine = everything after decode (dedupe, lateness buffer, window, binding, "
        "clustering, scoring, alerts); full Leiden = igraph Leiden (modularity, 2 iterations) on the whole final "
        "account–entity graph.",
        "",
        "| traffic | events | engine events/s | decode µs/event | decode+engine events/s | dirty-region tick p50 / p95 / max ms "
        "| full Leiden s (nodes / edges) | full recompute s | p95 tick vs full Leiden | detection lag event-time p50 / p95 s "
        "| batch wall p50 / p95 ms | live links | RSS MB | bytes per live link |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rows.append(
            f"| {r['scale']}x ({r['benign']:,} benign) | {r['events']:,} | {r['engine_events_per_s']:,.0f} | "
            f"{r['decode_us']:.1f} | {r['end_to_end_events_per_s']:,.0f} | "
            f"{r['tick_p50_ms']:.2f} / {r['tick_p95_ms']:.2f} / {r['tick_max_ms']:.0f} | "
            f"{r['full_leiden_s']:.2f} ({r['full_graph_nodes']:,} / {r['full_graph_edges']:,}) | "
            f"{r['full_components_s']:.2f} | {r['full_leiden_s'] / (r['tick_p95_ms'] / 1e3):,.0f}x | "
            f"{r['lag_p50_s']:.0f} / {r['lag_p95_s']:.0f} | {r['wall_batch_p50_ms']:.0f} / {r['wall_batch_p95_ms']:.0f} | "
            f"{r['live_links']:,} | {r['rss_mb']:,.0f} | {r['bytes_per_live_link']:.0f} |")
    table = "\n".join(rows) + "\n"
    print("\n" + table)
    if args.out:
        with open(args.out, "a") as handle:
            handle.write("\n" + table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
