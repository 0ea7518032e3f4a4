"""Cost of a detection tick as a function of the largest cluster's size: the split check against the
whole-cluster re-walk it replaced, in the same run.

    .venv/bin/python -m tests.benchmarks.cluster_size [--sizes 1000,10000,50000] [--days 14]

For each size N: one ring of about N live accounts meshed through shared phones (each account on its
own slot's phone and a random one of N/10), joining steadily over ``--days`` days so that, past the
first week, accounts join at one end of the 7-day window while others' links expire at the other —
the cluster changes at every tick. Ticks are timed over the last ``--measure-days`` (steady state),
after a warm-up both variants share.
The Leiden split is switched off (``split_above`` above N) so the ring stays one cluster.
Prints a markdown table; --out appends it to a file.
"""

from __future__ import annotations

import argparse
import platform
import random
import sys
import time

from graph import AccountEvent, DetectionConfig, DetectionEngine

DAY = 86400.0


def ring_events(size: int, days: float, seed: int) -> list[AccountEvent]:
    """About ``size`` accounts live at any time within a 7-day window."""
    rng = random.Random(seed)
    total = int(size * days / 7)
    phones = max(2, size // 10)
    events = []
    for i in range(total):
        t = 1_767_571_200.0 + (i + rng.random()) * days * DAY / total
        own, other = i % phones, rng.randrange(phones)
        events.append(AccountEvent(f"e{i}a", "signup", f"acct{i:07d}", t, device_id=f"phone{own}"))
        events.append(AccountEvent(f"e{i}b", "login", f"acct{i:07d}", t + 1, device_id=f"phone{other}"))
    return events


def run(events: list[AccountEvent], size: int, split_check: bool, measure_days: float, days: float
        ) -> dict[str, float]:
    config = DetectionConfig(split_above=10 * size + 1000)
    engine = DetectionEngine(config, clock=lambda: 0.0)
    half = int(len(events) * (1 - measure_days / days))
    for i in range(0, half, 5000):  # warm-up with the split check (both engines reach the same state)
        engine.process(events[i:min(i + 5000, half)])
    if not split_check:
        engine._check_splits = lambda rewalk, changed, flipped, seeds: ({}, set())  # type: ignore[method-assign]
    engine.tick_timings = []
    largest = 0
    started = time.perf_counter()
    for i in range(half, len(events), 5000):
        engine.process(events[i:i + 5000])
        largest = max(largest, max((len(c.members) for c in engine.registry.clusters.values()), default=0))
    seconds = time.perf_counter() - started
    ticks = sorted(engine.tick_timings)
    return {"largest": largest, "ticks": len(ticks), "p50_ms": ticks[len(ticks) // 2] * 1e3,
            "p99_ms": ticks[int(len(ticks) * 0.99)] * 1e3, "events_per_s": (len(events) - half) / seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--days", type=float, default=14.0)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--measure-days", type=float, default=1.0, help="ticks timed over the last days")
    parser.add_argument("--out", help="append the table to this markdown file")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    for size in sizes:
        events = ring_events(size, args.days, args.seed)
        rows.append((size, run(events, size, True, args.measure_days, args.days),
                     run(events, size, False, args.measure_days, args.days)))
    lines = [
        f"### Tick cost vs the largest cluster — one ring of ~N live accounts, {args.days:g}-day stream, 7-day window",
        "",
        f"Machine: {platform.machine()}, Python {platform.python_version()}. Command: "
        f"`python -m tests.benchmarks.cluster_size --sizes {args.sizes} --days {args.days:g} --seed {args.seed} "
        f"--measure-days {args.measure_days:g}`. Ticks timed over the last {args.measure_days:g} day(s), after the same "
        "warm-up; engine only.",
        "",
        "| N | largest cluster | ticks | split check: tick p50 / p99 ms | events/s | re-walk baseline: tick p50 / p99 ms | events/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for size, new, old in rows:
        lines.append(f"| {size:,} | {new['largest']:,.0f} | {new['ticks']:,.0f} | {new['p50_ms']:.2f} / "
                     f"{new['p99_ms']:.2f} | {new['events_per_s']:,.0f} | {old['p50_ms']:.2f} / {old['p99_ms']:.2f} | "
                     f"{old['events_per_s']:,.0f} |")
    first, last = rows[0][1], rows[-1][1]
    lines += ["", f"Split check: p99 at N = {rows[-1][0]:,} is {last['p99_ms'] / first['p99_ms']:.1f}x the p99 at "
                  f"N = {rows[0][0]:,} (re-walk: {rows[-1][2]['p99_ms'] / rows[0][2]['p99_ms']:.1f}x).", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "a") as handle:
            handle.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
