"""``fraudgraph demo``: the whole path on local defaults, then a report of what it caught.

Starts Apache Kafka (KRaft) on a free loopback port, the worker as a subprocess, produces simulated
traffic with planted rings, waits until the worker has caught up, and reports the clusters found,
the planted rings caught, the innocent accounts flagged, and where to query them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from streams.devkafka import DevKafka, free_port
from streams.report import evaluate, read_labels
from streams.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def scrape(port: int) -> dict[str, float]:
    """Prometheus text format -> {'name{labels}': value} (enough for the demo and the tests)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def metric_sum(metrics: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in metrics.items() if k == prefix or k.startswith(prefix + "{"))


def start_worker(settings: Settings, log_path: Path, extra: list[str] | None = None) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "streams.cli", "worker", "--bootstrap", settings.bootstrap,
           "--audit-db", settings.audit_db, "--metrics-port", str(settings.metrics_port), "--local-metrics",
           "--idle-flush-seconds", str(settings.idle_flush_seconds), *(extra or [])]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.returncode} while waiting for {what}")
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - not ready yet
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last_error})")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run_demo(args: argparse.Namespace) -> int:
    from kafka import KafkaConsumer

    from streams.audit import connect_read_only
    from streams.cli import main as cli

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
            labels_path = workdir / "labels.csv"
            cli(["simulate", "--bootstrap", broker.bootstrap, "--benign", str(args.benign),
                 "--ring-scale", str(args.ring_scale), "--seed", str(args.seed), "--labels", str(labels_path)])
            labels = read_labels(labels_path)
            produced = _topic_size(broker.bootstrap, settings.events_topic)
            started = time.monotonic()

            def caught_up() -> bool:
                m = scrape(settings.metrics_port)
                done = metric_sum(m, "fraudgraph_events_in_total{stage=\"decode\"}")
                print(f"demo: worker consumed {done:,.0f} / {produced:,} events", flush=True)
                return done >= produced

            wait_for(caught_up, 1800, "the worker to consume every event", worker, interval=5)
            time.sleep(settings.idle_flush_seconds + 2 * settings.audit_flush_seconds + 2)
            elapsed = time.monotonic() - started
            metrics = scrape(settings.metrics_port)
            consumer = KafkaConsumer(settings.alerts_topic, bootstrap_servers=broker.bootstrap,
                                     auto_offset_reset="earliest", consumer_timeout_ms=3000)
            alert_messages = [json.loads(m.value) for m in consumer]
            consumer.close()
            con = connect_read_only(settings.audit_db)
            try:
                alerts = {row[0]: (row[1], set()) for row in con.execute(
                    "SELECT alert_id, severity FROM alerts WHERE status = 'open'").fetchall()}
                for alert_id, account in con.execute("SELECT alert_id, account_id FROM alert_members").fetchall():
                    if alert_id in alerts:
                        alerts[alert_id][1].add(account)
                evidence = con.execute("""
                    SELECT a.alert_id, a.cluster_id, a.severity, a.member_count,
                           list(e.entity_type || ':' || e.entity_value || ' x' || e.members_sharing
                                ORDER BY e.entity_type = 'ip', e.members_sharing DESC)[:3]
                    FROM alerts a JOIN cluster_evidence e USING (cluster_id)
                    WHERE a.status = 'open' AND a.severity IN ('medium', 'high')
                    GROUP BY ALL ORDER BY a.member_count DESC""").fetchall()
            finally:
                con.close()
            _report(produced, elapsed, alert_messages, metrics, alerts, evidence, labels, settings)
        finally:
            stop(worker)
    return 0


def _topic_size(bootstrap: str, topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        return sum(consumer.end_offsets(parts).values())
    finally:
        consumer.close()


def _report(produced, elapsed, alert_messages, metrics, alerts, evidence, labels, settings) -> None:
    quality = evaluate(alerts, labels)
    print()
    print(f"== fraudgraph demo: {produced:,} events through Kafka -> Faust -> engine in {elapsed:.0f}s")
    print(f"fraud-alerts topic: {len(alert_messages)} messages; /metrics fraudgraph_alerts_total = "
          f"{metric_sum(metrics, 'fraudgraph_alerts_total'):.0f}; dead letters = "
          f"{metric_sum(metrics, 'fraudgraph_dead_letters_total'):.0f}")
    print("\nClusters alerted (medium/high), largest first, with the entities that bind them:")
    for alert_id, cluster_id, severity, members, top in evidence:
        print(f"  {alert_id:<14} {severity:<6} {members:>6} accounts  bound by {', '.join(top)}")
    print("\nPlanted rings caught (medium/high alerts):")
    for ring, (kind, size, caught) in quality.per_ring.items():
        print(f"  {ring} {kind:<12} {caught:>6} / {size:<6} caught")
    print(f"\nInnocent accounts flagged: {quality.false_positives} of {quality.flagged} flagged "
          f"(precision {quality.precision:.4f}); recall on rings of >= 100 accounts {quality.recall:.4f}")
    if quality.benign_flagged_by_kind:
        print(f"  innocent flagged by population: {quality.benign_flagged_by_kind}")
    print(f"\nQuery them: duckdb -readonly {settings.audit_db}   (or python: duckdb.connect(path, read_only=True))")
    print("  SELECT * FROM alerts ORDER BY member_count DESC;")
    print("  fraudgraph investigate worst --audit-db " + settings.audit_db)
