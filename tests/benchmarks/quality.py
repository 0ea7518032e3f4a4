"""Detection quality on simulated traffic, fraudgraph against the detectors a user would write first.

    .venv/bin/python -m tests.benchmarks.quality [--benign 100000] [--ring-scale 1.0] [--seed 42]

Same traffic, same run: (1) fraudgraph's engine (replay path, no Kafka); (2) hub cap K = 10 and 20 +
connected components on the account–entity graph; (3) Louvain (igraph multilevel) on the account
projection. A baseline "alerts" on every component/community of >= 50 accounts (fraudgraph's medium
size). Scores are account-level over actionable alerts (medium + high); recall counts rings of >= 100.
Prints a markdown table; --out appends it to a file.
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from collections import defaultdict

import igraph

from graph import DetectionConfig, DetectionEngine
from streams.contract import decode_event
from streams.report import Quality, evaluate
from streams.simulate import SimConfig, default_rings, generate

import orjson

MIN_GROUP = 50


def run_fraudgraph(events) -> tuple[dict[str, tuple[str, set[str]]], float]:
    engine = DetectionEngine(DetectionConfig(), clock=lambda: 0.0)
    members: dict[str, set[str]] = defaultdict(set)
    severity: dict[str, str] = {}
    started = time.perf_counter()
    for i in range(0, len(events), 5000):
        out = engine.process(events[i:i + 5000])
        _collect(out.alerts, members, severity)
    _collect(engine.flush().alerts, members, severity)
    elapsed = time.perf_counter() - started
    return {a: (severity[a], members[a]) for a in severity}, elapsed


def _collect(alerts, members, severity) -> None:
    for update in alerts:
        if update.action == "closed":
            severity.pop(update.alert_id, None)
            continue
        members[update.alert_id].update(update.members_added)
        members[update.alert_id].difference_update(update.members_removed)
        severity[update.alert_id] = update.severity


def final_links(events, window_seconds: float) -> dict[str, set[str]]:
    """entity -> accounts, for the links alive at the end of the traffic (what a batch job would see)."""
    end = max(e.ts for e in events)
    out: dict[str, set[str]] = defaultdict(set)
    for e in events:
        if e.ts > end - window_seconds:
            for key in e.entity_keys():
                out[key].add(e.account_id)
    return out


def hub_cap_components(links: dict[str, set[str]], cap: int) -> dict[str, tuple[str, set[str]]]:
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for accounts in links.values():
        if 2 <= len(accounts) <= cap:
            it = iter(accounts)
            first = find(next(it))
            for other in it:
                root = find(other)
                if root != first:
                    parent[root] = first
    groups: dict[str, set[str]] = defaultdict(set)
    for account in parent:
        groups[find(account)].add(account)
    return {f"cc{i}": ("medium", g) for i, g in enumerate(groups.values()) if len(g) >= MIN_GROUP}


def louvain_projection(links: dict[str, set[str]], max_degree: int = 1000, seed: int = 7
                       ) -> dict[str, tuple[str, set[str]]]:
    """Accounts linked when they share an entity (weight 1/log2(1+degree)); igraph multilevel."""
    import random

    index: dict[str, int] = {}
    weights: dict[tuple[int, int], float] = defaultdict(float)
    for accounts in links.values():
        degree = len(accounts)
        if degree < 2 or degree > max_degree:
            continue
        w = 1.0 / math.log2(1 + degree)
        ids = sorted(index.setdefault(a, len(index)) for a in accounts)
        for i, u in enumerate(ids):
            for v in ids[i + 1:]:
                weights[(u, v)] += w
    graph = igraph.Graph(n=len(index), edges=list(weights))
    igraph.set_random_number_generator(random.Random(seed))
    communities = graph.community_multilevel(weights=list(weights.values()))
    names = {i: a for a, i in index.items()}
    groups: dict[int, set[str]] = defaultdict(set)
    for node, community in enumerate(communities.membership):
        groups[community].add(names[node])
    return {f"lv{c}": ("medium", g) for c, g in groups.items() if len(g) >= MIN_GROUP}


def row(name: str, q: Quality, seconds: float) -> str:
    kinds = " ".join(f"{k} {c / n:.2f}" for k, (n, c) in q.per_kind.items())
    return (f"| {name} | {q.precision:.4f} | {q.recall:.4f} | {q.f1:.4f} | {q.flagged:,} | {q.false_positives:,} | "
            f"{q.alerts} | {q.benign_alerts} | {q.high_on_benign} | {kinds} | {seconds:.1f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benign", type=int, default=100_000)
    parser.add_argument("--ring-scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", help="append the table to this markdown file")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    stream, labels = generate(SimConfig(seed=args.seed, benign_accounts=args.benign, rings=default_rings(args.ring_scale)))
    events = [decode_event(orjson.dumps(e)) for e in stream]
    benign = sum(1 for r, _k in labels.values() if not r)
    print(f"traffic: {len(events):,} events, {benign:,} benign accounts, {len(labels) - benign:,} ring accounts "
          f"({time.perf_counter() - started:.0f}s to generate)", flush=True)

    rows = []
    alerts, seconds = run_fraudgraph(events)
    rows.append(row("**fraudgraph**", evaluate(alerts, labels), seconds))
    print(rows[-1], flush=True)
    links = final_links(events, DetectionConfig().window_seconds)
    for cap in (10, 20):
        t = time.perf_counter()
        groups = hub_cap_components(links, cap)
        rows.append(row(f"hub cap {cap} + connected components", evaluate(groups, labels), time.perf_counter() - t))
        print(rows[-1], flush=True)
    t = time.perf_counter()
    groups = louvain_projection(links)
    rows.append(row("Louvain on account projection", evaluate(groups, labels), time.perf_counter() - t))
    print(rows[-1], flush=True)

    header = [
        f"### Quality — {len(events):,} events, {benign:,} benign accounts, {len(labels) - benign:,} ring accounts "
        f"(seed {args.seed}, ring scale {args.ring_scale})",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {_cpus()} cores, Python {platform.python_version()}, "
        f"igraph {igraph.__version__}. Command: `python -m tests.benchmarks.quality --benign {args.benign} "
        f"--ring-scale {args.ring_scale} --seed {args.seed}`.",
        "",
        "| detector | precision | recall (rings ≥ 100) | F1 | accounts flagged | innocent flagged | actionable alerts "
        "| alerts mostly benign | high alerts on benign | recall per ring type | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    table = "\n".join(header + rows) + "\n"
    print("\n" + table)
    if args.out:
        with open(args.out, "a") as handle:
            handle.write("\n" + table)
    return 0


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    raise SystemExit(main())
