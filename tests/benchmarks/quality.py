"""Detection quality on simulated traffic, fraudgraph against the detectors a user would write first.

    .venv/bin/python -m tests.benchmarks.quality [--benign 100000] [--ring-scale 1.0] [--days 3,12] [--seed 42]
    .venv/bin/python -m tests.benchmarks.quality --families [--seeds 1,2,3] [--days 3,12] [--family-max-size 3000]

One run per stream length, same traffic for every detector: (1) fraudgraph's engine (replay path, no
Kafka); (2) hub cap K = 10 and 20 + connected components on the account–entity graph; (3) Louvain
(igraph multilevel) on the account projection. A baseline "alerts" on every component/community of
>= 50 accounts (fraudgraph's medium size). Scores are account-level over actionable alerts (medium +
high); recall counts rings of >= 100. Operation purity: for every actionable alert, the share of its
fraud members from its dominant operation; an operation is separated when it dominates an alert with
>= 90% of that alert's fraud members. Look-alikes: benign resellers, CI fleets and university classes.
Accounts count as flagged when an actionable alert ever held them (a ring caught on day 2 that
expired by day 12 was caught). Stopped rings: operations that stop after two days; in a 12-day stream
every one of their alerts must be closed by the end. Damage: the engine's API exchanges and output tokens per operation at the end, against the
simulator's ground truth over the same window. Prints markdown; --out appends it to a file.

``--families``: the red-team families (streams/dev/sim/families.py: six operations and eight benign
look-alikes, each instance's parameters drawn over wide ranges) planted into the same benign
population and rings, one run per seed and stream length; a table per family over all runs —
precision and recall of actionable alerts on its accounts, the share of each operation in its
largest actionable alert, and the damage its last published alert version states against what it
sent in the window at the stream's end — the families the rules were designed from apart from the
held-out ones (leave-family-out).
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from collections import Counter, defaultdict

import igraph
import orjson

from graph import DetectionConfig, DetectionEngine
from streams.contract import decode_event
from streams.dev.report import Quality, evaluate
from streams.dev.simulate import SimConfig, default_rings, generate

MIN_GROUP = 50
LOOKALIKES = ("benign_reseller", "benign_ci", "benign_class")


class Alerts:
    """What the detector published: every alert's members as of now (open ones), and every account an
    actionable alert ever held (a ring caught on day 2 and expired by day 12 was caught)."""

    def __init__(self) -> None:
        self.members: dict[str, set[str]] = defaultdict(set)
        self.severity: dict[str, str] = {}
        self.ever: dict[str, set[str]] = defaultdict(set)
        self.top: dict[str, str] = {}
        self.cluster_of: dict[str, str] = {}
        self.damage: dict[str, tuple[int, int]] = {}  # alert -> (exchanges, tokens) of its last version

    def add(self, updates) -> None:
        for update in updates:
            if update.action == "closed":
                self.severity.pop(update.alert_id, None)
                continue
            members = self.members[update.alert_id]
            members.update(update.members_added)
            members.difference_update(update.members_removed)
            self.severity[update.alert_id] = update.severity
            self.cluster_of[update.alert_id] = update.cluster_id
            self.damage[update.alert_id] = (update.requests, update.tokens_out)
            if update.severity in ("medium", "high"):
                self.ever[update.alert_id] |= members
                self.top[update.alert_id] = update.severity

    def open(self) -> dict[str, tuple[str, set[str]]]:
        return {a: (self.severity[a], self.members[a]) for a in self.severity}

    def ever_actionable(self) -> dict[str, tuple[str, set[str]]]:
        return {a: (self.top[a], self.ever[a]) for a in self.ever}


def run_fraudgraph(events):
    engine = DetectionEngine(DetectionConfig(), clock=lambda: 0.0)
    alerts = Alerts()
    started = time.perf_counter()
    for i in range(0, len(events), 5000):
        alerts.add(engine.process(events[i:i + 5000]).alerts)
    alerts.add(engine.flush().alerts)
    return engine, alerts, time.perf_counter() - started


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
            it = iter(sorted(accounts))
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
    for key in sorted(links):
        accounts = links[key]
        degree = len(accounts)
        if degree < 2 or degree > max_degree:
            continue
        w = 1.0 / math.log2(1 + degree)
        ids = sorted(index.setdefault(a, len(index)) for a in sorted(accounts))
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
    sep, ops = q.ops_separated
    look = sum(q.benign_flagged_by_kind.get(k, 0) for k in LOOKALIKES)
    kinds = " ".join(f"{k} {c / n:.2f}" for k, (n, c) in q.per_kind.items())
    below = sum(1 for p in q.purity if p < 0.9)
    return (f"| {name} | {q.precision:.4f} | {q.recall:.4f} | {q.f1:.4f} | {q.flagged:,} | {q.false_positives:,} | "
            f"{look:,} | {q.alerts} | {q.high_on_benign} | {q.min_purity:.3f} ({below} below 0.9) | {sep}/{ops} | "
            f"{kinds} | {seconds:.1f} |")


def stopped_rings(alerts, labels, stopping: set[str]) -> tuple[int, int]:
    """(stopped rings with no open actionable alert they dominate, stopped rings)."""
    still = set()
    for severity, members in alerts.values():
        if severity not in ("medium", "high"):
            continue
        ops = Counter(labels[a][0] for a in members if labels.get(a, ("", ""))[0])
        if ops:
            still.add(ops.most_common(1)[0][0])
    return len(stopping - still), len(stopping)


def damage(engine, alerts, cluster_of, labels, events, config: DetectionConfig):
    """Per ring of >= 100 accounts: the engine's (exchanges, tokens) now, summed over the open clusters it
    dominates, and the ground truth over the engine's window (whole hours after the window's edge, as
    the engine keeps them)."""
    end = engine.last_tick
    first_hour = int((end - config.window_seconds) // 3600) + 1
    truth: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for e in events:
        ring = labels.get(e.account_id, ("", ""))[0]
        if ring and e.type == "api_usage" and int(e.ts // 3600) >= first_hour and e.ts < end:
            truth[ring][0] += e.requests or 1
            truth[ring][1] += e.tokens_out or 0
    sizes = Counter(r for r, _k in labels.values() if r)
    measured: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for alert_id, (_severity, members) in alerts.items():
        ops = Counter(labels[a][0] for a in members if labels.get(a, ("", ""))[0])
        record = engine.clusters.get(cluster_of[alert_id])
        if not ops or record is None:
            continue
        ring, _n = ops.most_common(1)[0]
        features = engine.graph.features(record.number)
        measured[ring][0] += features.requests
        measured[ring][1] += features.tokens_out
    return [(ring, m[0], m[1], truth[ring][0], truth[ring][1]) for ring, m in sorted(measured.items())
            if sizes[ring] >= 100]


def one_run(args, days: float) -> str:
    started = time.perf_counter()
    config = SimConfig(seed=args.seed, benign_accounts=args.benign, rings=default_rings(args.ring_scale), days=days)
    stream, labels = generate(config)
    events = [decode_event(orjson.dumps(e)) for e in stream]
    seen = {e.account_id for e in events}
    labels = {a: label for a, label in labels.items() if a in seen}  # accounts with no event in the stream are not in it
    benign = sum(1 for r, _k in labels.values() if not r)
    print(f"traffic: {days:g} days, {len(events):,} events, {benign:,} benign accounts, {len(labels) - benign:,} "
          f"ring accounts ({time.perf_counter() - started:.0f}s to generate)", flush=True)
    rows = []
    engine, published, seconds = run_fraudgraph(events)
    q = evaluate(published.ever_actionable(), labels)
    rows.append(row("**fraudgraph**", q, seconds))
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

    stopping = {f"ring{r:02d}" for r, spec in enumerate(config.rings) if spec.stops}
    closed, n_stopping = stopped_rings(published.open(), labels, stopping)
    stop_check = f"{closed}/{n_stopping}" if days > config.stop_after_days + DetectionConfig().window_seconds / 86400 \
        else "not applicable (their links are still inside the window)"
    harm = damage(engine, published.open(), published.cluster_of, labels, events, DetectionConfig())
    looks = {k: sum(1 for _r, kind in labels.values() if kind == k) for k in LOOKALIKES}
    lines = [
        f"### Quality — {days:g} days, {len(events):,} events, {benign:,} benign accounts, "
        f"{len(labels) - benign:,} ring accounts (seed {args.seed}, ring scale {args.ring_scale})",
        "",
        f"Machine: {platform.machine()}, {_cpus()} cores, Python {platform.python_version()}, igraph "
        f"{igraph.__version__}. Command: `python -m tests.benchmarks.quality --benign {args.benign} "
        f"--ring-scale {args.ring_scale} --days {days:g} --seed {args.seed}`. Look-alike accounts in the traffic: "
        + ", ".join(f"{k.removeprefix('benign_')} {n}" for k, n in looks.items()) + ".",
        "",
        "| detector | precision | recall (rings ≥ 100) | F1 | accounts flagged | innocent flagged | look-alikes flagged "
        "| actionable alerts | high alerts on benign | operation purity, min | operations separated | recall per ring "
        "type | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Innocent accounts flagged by kind (fraudgraph): {dict(sorted(q.benign_flagged_by_kind.items())) or 'none'}. "
        f"Stopped rings whose alerts are all closed at the end: {stop_check}.",
        "",
        "Damage now (open alerts; a stopped ring has none left):",
        "",
        "| operation | kind | accounts | caught | engine: API exchanges | truth | error | engine: output tokens | truth | error |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for ring, req, tok, req_true, tok_true in harm:
        kind, size, caught = q.per_ring[ring]
        lines.append(f"| {ring} | {kind} | {size:,} | {caught:,} | {req:,} | {req_true:,} | {_err(req, req_true)} | "
                     f"{tok:,} | {tok_true:,} | {_err(tok, tok_true)} |")
    return "\n".join(lines) + "\n"


def _err(measured: int, truth: int) -> str:
    return f"{(measured - truth) / truth:+.1%}" if truth else "—"


def family_runs(args) -> str:
    """Every family in every (seed, stream length) run; one table row per family over all runs."""
    from streams.dev.sim.families import FAMILIES, HELD_OUT, OPERATIONS

    totals: dict[str, dict[str, list[float]]] = {f: defaultdict(list) for f in FAMILIES}
    runs = []
    for seed in (int(x) for x in args.seeds.split(",")):
        for days in (float(d) for d in args.days.split(",")):
            config = SimConfig(seed=seed, benign_accounts=args.benign, rings=default_rings(args.ring_scale), days=days,
                               families=FAMILIES, family_instances=args.family_instances,
                               family_max_size=args.family_max_size)
            stream, labels = generate(config)
            events = [decode_event(orjson.dumps(e)) for e in stream]
            seen = {e.account_id for e in events}
            labels = {a: label for a, label in labels.items() if a in seen}
            engine, published, seconds = run_fraudgraph(events)
            ever = published.ever_actionable()
            flagged = set().union(*(m for sev, m in ever.values() if sev in ("medium", "high"))) if ever else set()
            q = evaluate(ever, labels)
            runs.append(f"seed {seed}, {days:g} days: {len(events):,} events, {len(labels):,} accounts, overall "
                        f"precision {q.precision:.4f}, recall {q.recall:.4f}, engine {seconds:.1f} s")
            print(runs[-1], flush=True)
            truth = _window_truth(engine, labels, events)
            for family in FAMILIES:
                members = [a for a, (_r, k) in labels.items() if k in (family, f"benign_{family}")]
                t = totals[family]
                t["accounts"].append(len(members))
                t["flagged"].append(sum(1 for a in members if a in flagged))
                if family not in OPERATIONS:
                    continue
                instances: dict[str, list[str]] = defaultdict(list)
                for a in members:
                    instances[labels[a][0]].append(a)
                for ring, accounts in instances.items():
                    inside = set(accounts)
                    best, best_alert = 0, None
                    for alert_id, (severity, held) in ever.items():
                        n = len(inside & held)
                        if severity in ("medium", "high") and n > best:
                            best, best_alert = n, alert_id
                    t["one_alert"].append(best / len(accounts))
                    sent = truth.get(ring, 0)
                    if best_alert is not None and sent and best_alert in published.damage:
                        dominated = [a for a, (sev, held) in published.open().items()
                                     if a in published.damage and len(inside & held) * 2 > len(held)]
                        stated = sum(published.damage[a][0] for a in dominated)
                        t["damage_error"].append((stated - sent) / sent)
    lines = [f"### Red-team families — {args.family_instances} instance(s) per family per run, sizes 100–"
             f"{args.family_max_size:,} (log-uniform), {args.benign:,} benign accounts and the planted rings beside them",
             "",
             f"Machine: {platform.machine()}, {_cpus()} cores, Python {platform.python_version()}. Command: "
             f"`python -m tests.benchmarks.quality --families --seeds {args.seeds} --days {args.days} "
             f"--benign {args.benign} --family-instances {args.family_instances} --family-max-size {args.family_max_size}`.",
             "", *[f"- {r}" for r in runs], "",
             "| family | kind | set | accounts | flagged (actionable) | precision on it | recall | in one alert, min / median "
             "| damage error, max abs |",
             "|---|---|---|---|---|---|---|---|---|"]
    for family in sorted(FAMILIES, key=lambda f: (f in HELD_OUT, f not in OPERATIONS, f)):
        t = totals[family]
        accounts, flagged_n = int(sum(t["accounts"])), int(sum(t["flagged"]))
        kind = "operation" if family in OPERATIONS else "benign look-alike"
        which = "held out" if family in HELD_OUT else "tuned"
        if family in OPERATIONS:
            one = sorted(t["one_alert"])
            damage = max((abs(e) for e in t["damage_error"]), default=float("nan"))
            lines.append(f"| {family} | {kind} | {which} | {accounts:,} | {flagged_n:,} | 1.0000 | "
                         f"{flagged_n / accounts if accounts else 1:.4f} | {one[0]:.2f} / {one[len(one) // 2]:.2f} | "
                         f"{damage:.1%} ({len(t['damage_error'])} of {len(one)} alerted) |")
        else:
            lines.append(f"| {family} | {kind} | {which} | {accounts:,} | {flagged_n:,} | — | — | — | — |")
    lines += ["", "Precision on an operation's accounts is 1 by construction; what counts against precision is a "
              "look-alike's flagged accounts (column 5 on their rows) and the overall precision of each run above."]
    return "\n".join(lines) + "\n"


def _window_truth(engine, labels, events) -> dict[str, int]:
    """Per operation: its API exchanges in whole hours inside the engine's window at the end."""
    end = engine.last_tick
    first_hour = int((end - DetectionConfig().window_seconds) // 3600) + 1
    truth: dict[str, int] = defaultdict(int)
    for e in events:
        ring = labels.get(e.account_id, ("", ""))[0]
        if ring and e.type == "api_usage" and int(e.ts // 3600) >= first_hour and e.ts < end:
            truth[ring] += e.requests or 1
    return truth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benign", type=int, default=100_000)
    parser.add_argument("--ring-scale", type=float, default=1.0)
    parser.add_argument("--days", default="3,12", help="stream lengths, comma-separated (default 3,12)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", help="append the tables to this markdown file")
    parser.add_argument("--families", action="store_true", help="the red-team families' table instead")
    parser.add_argument("--seeds", default="1,2,3", help="with --families: one run per seed (and stream length)")
    parser.add_argument("--family-instances", type=int, default=2)
    parser.add_argument("--family-max-size", type=int, default=3000)
    args = parser.parse_args(argv)
    tables = [family_runs(args)] if args.families else [one_run(args, float(d)) for d in args.days.split(",")]
    text = "\n".join(tables)
    print("\n" + text)
    if args.out:
        with open(args.out, "a") as handle:
            handle.write("\n" + text)
    return 0


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    raise SystemExit(main())
