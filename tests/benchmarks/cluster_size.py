"""Cost of a detection tick as a function of the largest cluster's size, beside a from-scratch
evaluation of the same rules on the same state.

    .venv/bin/python -m tests.benchmarks.cluster_size [--sizes 1000,10000,50000] [--days 14] [--repeats 9]

For each size N: one ring of about N live accounts meshed through shared phones (each account on its
own slot's phone and a random one of N/10), joining steadily over ``--days`` days so that, past the
first week, accounts join at one end of the 7-day window while others' links expire at the other —
the cluster grows, loses members and is re-checked for splits at every tick. Ticks are timed over the
last ``--measure-days`` (steady state), in ``--repeats`` runs whose medians the table gives. The baseline is what a tick would cost if it re-derived the
clusters from the live links (the kernel's from-scratch evaluation, the one the property tests compare
with), timed on the final state.
Prints a markdown table; --out appends it to a file.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import time

from graph import AccountEvent, DetectionConfig, DetectionEngine

DAY = 86400.0


def ring_events(size: int, days: float, seed: int, rate_of: int = 0) -> list[AccountEvent]:
    """About ``size`` accounts live at any time within a 7-day window; with ``rate_of`` > ``size``, unrelated
    accounts (each on a phone of its own: no cluster) join beside them, so that accounts join at the rate a
    ring of ``rate_of`` would have (the same traffic per tick at every size)."""
    rng = random.Random(seed)
    total = int(size * days / 7)
    others = int(max(0, rate_of - size) * days / 7)
    phones = max(2, size // 10)
    events = []
    for i in range(total):
        t = 1_767_571_200.0 + (i + rng.random()) * days * DAY / total
        own, other = i % phones, rng.randrange(phones)
        events.append(AccountEvent(f"e{i}a", "signup", f"acct{i:07d}", t, device_id=f"phone{own}"))
        events.append(AccountEvent(f"e{i}b", "login", f"acct{i:07d}", t + 1, device_id=f"phone{other}"))
    for i in range(others):
        t = 1_767_571_200.0 + (i + rng.random()) * days * DAY / others
        events.append(AccountEvent(f"u{i}a", "signup", f"user{i:07d}", t, device_id=f"own-phone{i}"))
        events.append(AccountEvent(f"u{i}b", "login", f"user{i:07d}", t + 1, device_id=f"own-phone{i}"))
    events.sort(key=lambda e: e.ts)
    return events


def run(events: list[AccountEvent], measure_days: float, days: float) -> dict[str, float]:
    engine = DetectionEngine(DetectionConfig(), clock=lambda: 0.0)
    half = int(len(events) * (1 - measure_days / days))
    for i in range(0, half, 5000):
        engine.process(events[i:min(i + 5000, half)])
    engine.tick_timings = []
    ticks_before = engine.graph.stats()["ticks"]
    largest = 0
    started = time.perf_counter()
    for i in range(half, len(events), 5000):
        engine.process(events[i:i + 5000])
        largest = max(largest, max((c.size for c in engine.clusters.values()), default=0))
    seconds = time.perf_counter() - started
    ticks = sorted(engine.tick_timings)
    began = time.perf_counter()
    engine.graph.full_partition()
    scratch = time.perf_counter() - began
    return {"largest": largest, "ticks": len(ticks), "p50_ms": ticks[len(ticks) // 2] * 1e3,
            "p99_ms": ticks[int(len(ticks) * 0.99)] * 1e3, "events_per_s": (len(events) - half) / seconds,
            "events_per_tick": (len(events) - half) / max(1, engine.graph.stats()["ticks"] - ticks_before),
            "scratch_ms": scratch * 1e3}


def median_run(events: list[AccountEvent], measure_days: float, days: float, repeats: int) -> dict[str, float]:
    """``run`` ``repeats`` times in this process; each figure's median (a p99 of sub-millisecond ticks on a
    shared core moves with a few slow ticks: one run's is not a measurement)."""
    runs = [run(events, measure_days, days) for _ in range(repeats)]
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def table(sizes: list[int], days: float, seed: int, measure_days: float, repeats: int = 9) -> str:
    traffic = (("the ring's own", 0), (f"as a ring of {max(sizes):,}'s", max(sizes)))
    rows = [(size, kind, median_run(ring_events(size, days, seed, rate_of), measure_days, days, repeats))
            for kind, rate_of in traffic for size in sizes]
    lines = [
        f"### Tick cost vs the largest cluster — one ring of ~N live accounts, {days:g}-day stream, 7-day window",
        "",
        f"Command: `python -m tests.benchmarks.cluster_size --sizes {','.join(map(str, sizes))} --days {days:g} "
        f"--seed {seed} --measure-days {measure_days:g} --repeats {repeats}`. Ticks timed over the last "
        f"{measure_days:g} day(s) (the window full: accounts join and expire at every tick); engine only; every "
        f"figure the median of {repeats} runs. Traffic: the ring's own (it grows with N), or the same at every N "
        f"(unrelated accounts, each on a phone of its own, join beside a smaller ring at the rate a ring of "
        f"{max(sizes):,} has), so that only the cluster's size differs. Baseline: the same rules evaluated from "
        "scratch on the final state (what re-deriving the clusters at a tick would cost).",
        "",
        "| traffic | N | largest cluster | ticks that worked | events per tick | tick p50 / p99 ms | events/s | from scratch, ms "
        "| from scratch / tick p99 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for size, kind, r in rows:
        lines.append(f"| {kind} | {size:,} | {r['largest']:,.0f} | {r['ticks']:,.0f} | {r['events_per_tick']:.1f} | "
                     f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f} | "
                     f"{r['events_per_s']:,.0f} | {r['scratch_ms']:,.1f} | {r['scratch_ms'] / r['p99_ms']:,.0f}x |")
    lines.append("")
    for kind, _ in traffic:
        mine = [(size, r) for size, k, r in rows if k == kind]
        (n0, first), (n1, last) = mine[0], mine[-1]
        lines.append(f"Traffic {kind}: tick p99 at N = {n1:,} is **{last['p99_ms'] / first['p99_ms']:.2f}x** the p99 at "
                     f"N = {n0:,} (p50: {last['p50_ms'] / first['p50_ms']:.2f}x), with {last['events_per_tick'] / first['events_per_tick']:.1f}x "
                     f"the events per tick; from scratch grows {last['scratch_ms'] / first['scratch_ms']:.0f}x.")
    lines += ["", "Ticks that worked: those that changed a binding, a core or a cluster (the ones timed); events per "
                  "tick: the measured events over all ticks of the measured days.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--days", type=float, default=14.0)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--measure-days", type=float, default=7.0, help="ticks timed over the last days")
    parser.add_argument("--repeats", type=int, default=9, help="runs per size; the table gives medians")
    parser.add_argument("--out", help="append the table to this markdown file")
    args = parser.parse_args(argv)
    text = (f"Machine: {platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}.\n\n"
            + table([int(s) for s in args.sizes.split(",")], args.days, args.seed, args.measure_days, args.repeats))
    print(text)
    if args.out:
        with open(args.out, "a") as handle:
            handle.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
