"""The batch intake on a real broker: a trickle is not held for a batch to fill; while the audit store
cannot keep up the worker stops taking input and its memory stays bounded, and once the store is back
it goes on and ends with ``replay``'s alerts; offsets are committed in the intake's own group."""

from __future__ import annotations

import json
import time
from pathlib import Path

import duckdb
from kafka import KafkaConsumer, TopicPartition

from streams.cli import main as cli
from streams.dev.localrun import wait_for
from tests.integration.conftest import contract_json
from tests.unit.scenarios import farm


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def flagged(db: str | Path) -> set[str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {row[0] for row in con.execute("SELECT DISTINCT account_id FROM alert_members").fetchall()}
    finally:
        con.close()


def test_a_trickle_is_decoded_without_waiting_for_a_batch_to_fill(worker):
    w = worker(1, batch_size=20_000)
    w.start()
    events = farm("t", 3, 1)
    for i, event in enumerate(events):
        sent = time.monotonic()
        w.produce([contract_json(event)], [event.account_id.encode()])
        wait_for(lambda i=i: (w.metric('fraudgraph_events_in_total{stage="decode"}') or 0) >= i + 1, 10,
                 "the event decoded", w.proc, interval=0.05)
        assert time.monotonic() - sent < 3.0  # --batch-seconds (0.25 s) and a metrics scrape, not a full batch


def test_input_pauses_while_the_audit_store_is_behind_and_memory_stays_bounded(worker, tmp_path):
    events = tmp_path / "events.jsonl"
    cli(["simulate", "--benign", "6000", "--ring-scale", "0.1", "--days", "2", "--seed", "5", "--out", str(events)])
    lines = [line for line in events.read_bytes().splitlines() if line]
    keys = [json.loads(line)["account_id"].encode() for line in lines]
    w = worker(2, audit_backlog_rows=2_000, checkpoint_seconds=0.0)
    w.start()
    parts = Path(w.settings.audit_db + ".parts")
    table = parts / "cluster_snapshots"
    aside = parts / "cluster_snapshots.aside"
    table.rename(aside)
    table.write_text("not a folder: every flush of this table fails")  # the audit store cannot keep up
    try:
        w.produce(lines, keys)
        wait_for(lambda: (w.metric("fraudgraph_audit_write_errors_total") or 0) > 0, 120, "a failed flush", w.proc)
        samples = []
        for _ in range(20):  # 10 s with the store still failing
            samples.append((w.consumed(), rss_mib(w.proc.pid)))
            time.sleep(0.5)
        consumed_then = samples[-1][0]
        assert consumed_then < len(lines), "the worker went on taking input with the audit store behind"
        assert samples[-1][0] - samples[len(samples) // 2][0] == 0, "input kept flowing while the store failed"
        assert max(r for _, r in samples) - samples[0][1] < 64, samples  # no growth while paused
        assert (w.metric("fraudgraph_consumer_lag_messages") or 0) > 0
        assert "input paused" in w.log()
    finally:
        table.unlink()
        aside.rename(table)
    w.wait_consumed(300)
    w.settle()
    w.stop()
    replayed = tmp_path / "replay.duckdb"
    cli(["replay", str(events), "--audit-db", str(replayed), "--quiet"])
    assert flagged(w.settings.audit_db) == flagged(replayed) and flagged(replayed)


def test_offsets_are_committed_in_the_intake_group_after_the_batch(worker):
    w = worker(1)
    w.start()
    events = farm("c", 30, 4)
    w.produce([contract_json(e) for e in events], [e.account_id.encode() for e in events])
    w.wait_consumed(60)
    group = f"{w.settings.app_id}-intake"
    consumer = KafkaConsumer(bootstrap_servers=w.broker.bootstrap, group_id=group, enable_auto_commit=False)
    try:
        wait_for(lambda: consumer.committed(TopicPartition(w.settings.events_topic, 0)) == len(events), 30,
                 "the intake group's commit")
    finally:
        consumer.close()



def test_records_on_a_partition_added_under_the_worker_stop_it_before_they_are_applied(worker):
    """The intake hands over records of a partition the engine has no window for: the worker stops
    (status 3, one line saying why) without applying or committing them."""
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import NewPartitions

    w = worker(partitions=2, checkpoint_seconds=0.0)
    w.start()
    admin = KafkaAdminClient(bootstrap_servers=w.broker.bootstrap)
    try:
        admin.create_partitions({w.settings.events_topic: NewPartitions(3)})
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=w.broker.bootstrap)
    for event in farm("n", 5, 1):
        producer.send(w.settings.events_topic, contract_json(event), partition=2)
    producer.flush()
    producer.close()
    assert w.proc.wait(timeout=120) == 3
    assert "now has 3 partitions, the engine was built for 2" in w.log()
    consumer = KafkaConsumer(bootstrap_servers=w.broker.bootstrap, group_id=f"{w.settings.app_id}-intake",
                             enable_auto_commit=False)
    try:
        assert consumer.committed(TopicPartition(w.settings.events_topic, 2)) is None  # nothing of it taken
    finally:
        consumer.close()
