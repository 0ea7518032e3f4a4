"""``fraudgraph demo``: the whole path on local defaults, then a report of what it caught.

Starts Apache Kafka (KRaft) on a free loopback port, the worker as a subprocess, produces simulated
traffic with planted rings, waits until the worker has caught up, and reports the alerts, the
planted rings caught at each severity, the innocent accounts flagged, and the exact commands to
query the audit store it leaves behind.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from streams.dev.broker import DevKafka, free_port
from streams.dev.localrun import metric_sum, scrape, start_worker, stop, wait_for
from streams.settings import Settings
from streams.dev.simulate import SimConfig, default_rings, generate, produce_events, write_labels
from streams.sinks.audit.queries import headline, shared_lines

SEVERITIES = ("high", "medium", "low")


def run_demo(args: argparse.Namespace) -> int:
    from kafka import KafkaConsumer

    from streams.sinks.audit import connect_read_only

    workdir = Path(args.workdir).resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    print("demo: starting Apache Kafka (KRaft) on loopback ...", flush=True)
    with DevKafka() as broker:
        settings = Settings(bootstrap=broker.bootstrap, audit_db=str(workdir / "audit.duckdb"),
                            metrics_port=free_port(), idle_flush_seconds=3.0)
        broker.create_topics([settings.events_topic, settings.dlq_topic, settings.alerts_topic,
                              settings.verdicts_topic])
        worker = start_worker(settings, workdir / "worker.log")
        try:
            wait_for(lambda: scrape(settings.metrics_port), 120, "the worker's /metrics", worker)
            print(f"demo: worker up (metrics http://127.0.0.1:{settings.metrics_port}/metrics); producing traffic ...",
                  flush=True)
            events, labels = generate(SimConfig(seed=args.seed, benign_accounts=args.benign,
                                                rings=default_rings(args.ring_scale)))
            produced = produce_events(events, settings)
            write_labels(workdir / "labels.csv", labels)
            started = time.monotonic()

            def caught_up() -> bool:
                done = metric_sum(scrape(settings.metrics_port), 'fraudgraph_events_in_total{stage="decode"}')
                print(f"demo: worker consumed {done:,.0f} / {produced:,} events", flush=True)
                return done >= produced

            wait_for(caught_up, 1800, "the worker to consume every event", worker, interval=5)
            time.sleep(settings.idle_flush_seconds + 2 * settings.audit_flush_seconds + 2)
            elapsed = time.monotonic() - started
            metrics = scrape(settings.metrics_port)
            consumer = KafkaConsumer(settings.alerts_topic, bootstrap_servers=broker.bootstrap,
                                     auto_offset_reset="earliest", consumer_timeout_ms=3000)
            messages = [json.loads(m.value) for m in consumer]
            consumer.close()
            con = connect_read_only(settings.audit_db)
            try:
                alerts = con.execute("""
                    SELECT a.alert_id, a.cluster_id, a.severity, a.status, a.member_count,
                           list(m.account_id) FILTER (WHERE m.account_id IS NOT NULL), a.reason,
                           a.requests, a.tokens_out
                    FROM alerts a LEFT JOIN alert_members m USING (alert_id) GROUP BY ALL
                    ORDER BY a.member_count DESC, a.alert_id""").fetchall()
                shared = con.execute("""
                    SELECT cluster_id, other_cluster_id, entity_type, shared_entities, accounts_here, accounts_there
                    FROM cluster_links ORDER BY cluster_id, shared_entities DESC, other_cluster_id""").fetchall()
                evidence = dict(con.execute("""
                    SELECT cluster_id, list(entity_type || ':' || entity_value || ' x' || members_sharing
                                            ORDER BY entity_type = 'ip', members_sharing DESC, entity_value)[:3]
                    FROM cluster_evidence GROUP BY cluster_id""").fetchall())
                page_path = worst_page(con, workdir)
            finally:
                con.close()
            report(produced, elapsed, messages, metrics, alerts, evidence, labels, settings.audit_db, shared,
                   settings.window_days, page_path)
        finally:
            stop(worker)
    return 0


def worst_page(con: Any, workdir: Path) -> Path | None:
    """The worst open actionable operation (as `investigate worst` ranks them) written as its page."""
    from streams.sinks.audit import page
    from streams.sinks.audit.queries import WORST_CLUSTERS

    worst = con.execute(WORST_CLUSTERS, [1]).fetchone()
    if worst is None:
        return None
    path = workdir / f"operation-{worst[0]}.html"
    page.write(con, worst[0], str(path))
    return path


def report(produced: int, elapsed: float, messages: list[dict[str, Any]], metrics: dict[str, float],
           alerts: list[tuple[Any, ...]], evidence: dict[str, list[str]], labels: dict[str, tuple[str, str]],
           db: str, shared: Sequence[tuple[Any, ...]] = (), window_days: float = 7.0,
           page_path: Path | None = None) -> None:
    ring_of = {a: ring for a, (ring, _kind) in labels.items() if ring}
    kind_of = {ring: kind for ring, kind in labels.values() if ring}
    ring_sizes = Counter(ring_of.values())
    # Which severity caught each ring account (its strongest open alert).
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    caught_at: dict[str, str] = {}
    innocent: dict[str, set[str]] = defaultdict(set)
    for _alert_id, _cluster, severity, status, _size, members, _reason, _requests, _tokens in alerts:
        if status != "open":
            continue
        for account in members or ():
            if account in ring_of:
                if account not in caught_at or rank[severity] < rank[caught_at[account]]:
                    caught_at[account] = severity
            else:
                innocent[severity].add(account)

    print(f"\n== fraudgraph demo: {produced:,} events through Kafka -> Faust -> engine in {elapsed:.0f}s")
    per_alert = Counter(m["alert_id"] for m in messages)
    print(f"fraud-alerts topic: {len(messages)} messages for {len(per_alert)} alerts (each alert is published when "
          "it opens, escalates, grows by 25%, its damage moves by 10% or it closes; actions: "
          + ", ".join(f"{k} {v}" for k, v in sorted(Counter(m['action'] for m in messages).items())) + ")")
    print(f"/metrics: fraudgraph_alerts_total = {metric_sum(metrics, 'fraudgraph_alerts_total'):.0f}, "
          f"dead letters = {metric_sum(metrics, 'fraudgraph_dead_letters_total'):.0f}")

    print("\nAlerts (open ones first; medium and high are actionable, low is informational):")
    print(f"  {'alert':<14} {'cluster':<9} {'severity':<8} {'status':<7} {'accounts':>8} {'exchanges':>10} "
          f"{'output tokens':>14}  {'msgs':>4}  bound by (top 3)")
    for alert_id, cluster, severity, status, size, _m, reason, requests, tokens in sorted(
            alerts, key=lambda a: (a[3] != "open", -a[4])):
        why = ", ".join(evidence.get(cluster, [])) if status == "open" else f"closed: {reason}"
        print(f"  {alert_id:<14} {cluster:<9} {severity:<8} {status:<7} {size:>8} {requests or 0:>10,} {tokens or 0:>14,}  "
              f"{per_alert.get(alert_id, 0):>4}  {why}")
    print("  (exchanges and output tokens: the members' API usage within the window, as of the alert's last version)")

    print("\nOperations (open actionable alerts) and the infrastructure they share without being joined:")
    shares: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for cluster, *rest in shared:
        shares[cluster].append(tuple(rest))
    operations = [a for a in alerts if a[3] == "open" and a[2] in ("high", "medium")]
    for _alert_id, cluster, _severity, _status, size, _m, _reason, requests, tokens in operations:
        print(f"  {headline(cluster, size, requests, tokens, window_days)}")
        for line in shared_lines(shares.get(cluster, [])[:3]):
            print(f"      {line}")
    if not operations:
        print("  (none)")

    print("\nPlanted rings: accounts caught by their strongest open alert")
    print(f"  {'ring':<7} {'kind':<12} {'size':>6} {'high':>6} {'medium':>7} {'low':>6} {'missed':>7}")
    for ring in sorted(ring_sizes):
        counts = Counter(caught_at.get(a, "missed") for a, r in ring_of.items() if r == ring)
        print(f"  {ring:<7} {kind_of[ring]:<12} {ring_sizes[ring]:>6} {counts['high']:>6} {counts['medium']:>7} "
              f"{counts['low']:>6} {counts['missed']:>7}")
    actionable = {a for a, s in caught_at.items() if s in ("high", "medium")}
    flagged_innocent = innocent["high"] | innocent["medium"]
    print(f"\nRing accounts in actionable (medium/high) alerts: {len(actionable):,} of {len(ring_of):,}; "
          f"innocent accounts in actionable alerts: {len(flagged_innocent)}, in low alerts: {len(innocent['low'])}")
    print("Rings under 50 accounts can only reach low (the medium size is 50): low alerts are leads, not pages.")
    if page_path is not None:
        print(f"\nThe worst operation ({page_path.stem.removeprefix('operation-')}) as a page — who shares what, size "
              f"and damage over time, lineage; open it in a browser, it needs no network:\n  {page_path}")
    print("\nNext steps (copy-paste; the demo's audit store stays in place):")
    print(f"  .venv/bin/fraudgraph investigate worst --audit-db {db}")
    if alerts:
        print(f"  .venv/bin/fraudgraph investigate cluster {alerts[0][1]} --audit-db {db}")
    print(f"  .venv/bin/python -c \"import duckdb; duckdb.connect('{db}', read_only=True)"
          ".sql('SELECT alert_id, severity, member_count FROM alerts ORDER BY member_count DESC').show()\"")
