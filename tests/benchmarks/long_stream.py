"""A stream longer than the window, where links expire at every tick: the split check against the
whole-cluster re-walk it replaced, in the same run, on the same events.

    .venv/bin/python -m tests.benchmarks.long_stream [--benign 10000] [--ring-scale 0.2] [--days 12]

Both runs use the same engine; the baseline only turns the split check off (every cluster that lost
a link is re-walked in full, as before graph/splits.py). Reported: engine events/s (after decode),
tick p50/p99 and the largest cluster, and whether both gave the same alerts and lineage (they must).
Prints a markdown table; --out appends it to a file.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

from graph import DetectionConfig, DetectionEngine
from graph.engine import EngineOutput
from streams.contract import decode_event
from streams.simulate import SimConfig, default_rings, generate

import orjson


def run(events: list, split_check: bool) -> dict[str, object]:
    engine = DetectionEngine(DetectionConfig(), clock=lambda: 0.0)
    engine.tick_timings = []
    if not split_check:
        engine._check_splits = lambda rewalk, changed, flipped, seeds: ({}, set())  # type: ignore[method-assign]
    outputs: list[EngineOutput] = []
    largest = 0
    started = time.perf_counter()
    for i in range(0, len(events), 5000):
        outputs.append(engine.process(events[i:i + 5000]))
        largest = max(largest, max((len(c.members) for c in engine.registry.clusters.values()), default=0))
    outputs.append(engine.flush())
    seconds = time.perf_counter() - started
    ticks = sorted(engine.tick_timings)
    fingerprint = ([(a.alert_id, a.version, a.action, a.severity, a.member_count) for o in outputs for a in o.alerts],
                   [(e.cluster_id, e.kind, e.at, e.size, e.other) for o in outputs for e in o.lineage])
    return {"seconds": seconds, "events_per_s": len(events) / seconds, "tick_p50_ms": ticks[len(ticks) // 2] * 1e3,
            "tick_p99_ms": ticks[int(len(ticks) * 0.99)] * 1e3, "largest": largest, "fingerprint": fingerprint,
            "alerts": len(fingerprint[0])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benign", type=int, default=10_000)
    parser.add_argument("--ring-scale", type=float, default=0.2)
    parser.add_argument("--days", type=float, default=12.0)
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--out", help="append the table to this markdown file")
    args = parser.parse_args(argv)
    stream, _labels = generate(SimConfig(seed=args.seed, benign_accounts=args.benign, days=args.days,
                                         rings=default_rings(args.ring_scale)))
    events = [decode_event(orjson.dumps(e)) for e in stream]
    new = run(events, split_check=True)
    old = run(events, split_check=False)
    same = new["fingerprint"] == old["fingerprint"]
    lines = [
        f"### Long stream — {len(events):,} events over {args.days:g} days (7-day window), "
        f"{args.benign:,} benign accounts, ring scale {args.ring_scale}",
        "",
        f"Machine: {platform.machine()}, Python {platform.python_version()}. Command: "
        f"`python -m tests.benchmarks.long_stream --benign {args.benign} --ring-scale {args.ring_scale} "
        f"--days {args.days:g} --seed {args.seed}`. Engine only (decode done before timing).",
        "",
        "| engine | events/s | seconds | tick p50 / p99 ms | largest cluster | alert publications |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in (("split check (graph/splits.py)", new), ("baseline: re-walk every cluster that lost a link", old)):
        lines.append(f"| {name} | {r['events_per_s']:,.0f} | {r['seconds']:.1f} | {r['tick_p50_ms']:.2f} / "
                     f"{r['tick_p99_ms']:.1f} | {r['largest']:,} | {r['alerts']:,} |")
    lines += ["", f"Speed-up {old['seconds'] / new['seconds']:.2f}x; same alerts and lineage: {same}.", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "a") as handle:
            handle.write(text + "\n")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
