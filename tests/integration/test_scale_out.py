"""Scale-out on the real broker: two workers in one group split the input partitions (stage A) and
one of them holds stage B; the alerts are those of one worker and of ``replay``. A kill -9 of one
of the two, and a broker that is away for 30 s, lose nothing and double nothing."""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import replace
from pathlib import Path

from streams.sinks.audit import connect_read_only
from streams.cli import main as cli
from streams.dev.broker import DevKafka
from streams.dev.localrun import wait_for
from tests.integration.conftest import WorkerHandle
from tests.integration.test_end_to_end import alerted_clusters, simulate
from tests.integration.test_restart import assert_nothing_doubled


def replayed_alerts(events: Path, tmp: Path) -> list[tuple]:
    db = tmp / "replay.duckdb"
    cli(["replay", str(events), "--audit-db", str(db), "--quiet"])
    con = connect_read_only(db)
    try:
        return sorted(con.execute("SELECT alert_id, version, action, severity, member_count FROM alert_history "
                                  "WHERE notify").fetchall())
    finally:
        con.close()


def streamed_alerts(w: WorkerHandle) -> list[tuple]:
    """The distinct alert versions on fraud-alerts (a takeover may publish a version again: docs/operations.md)."""
    return sorted({(m["alert_id"], m["version"], m["action"], m["severity"], m["member_count"])
                   for m in (json.loads(r.value) for r in w.read_topic(w.settings.alerts_topic))})


def owner(workers: list[WorkerHandle]) -> list[WorkerHandle]:
    return [w for w in workers if w.proc is not None and w.metric("fraudgraph_global_stage_owner") == 1]


def wait_all_consumed(workers: list[WorkerHandle], produced: int, timeout: float = 300) -> None:
    wait_for(lambda: sum(w.consumed() for w in workers if w.proc is not None) >= produced, timeout,
             f"the workers to consume {produced} records", interval=1)


def test_two_workers_give_the_alerts_of_replay(worker, tmp_path):
    events = tmp_path / "events.jsonl"
    simulate(events)
    # No partition may count as idle between the workers' start and the end of the input: one declared
    # idle (no input for --idle-flush-seconds) has its later batches joined to the next tick stage B
    # applies (graph/ticks.py), which replay of the file never does. With a 3 s idle flush the wait for
    # readiness alone made every partition idle, and the workers' batch intake then let one worker run
    # days of event time ahead of the other.
    first = worker(partitions=4, idle_flush_seconds=25.0)
    second = first.twin("second")
    try:
        first.launch(), second.launch()
        wait_for(lambda: all(w.metric("fraudgraph_recovering") == 0 and (w.metric("fraudgraph_assigned_partitions") or 0) == 2
                             for w in (first, second)), 120, "two workers with two input partitions each")
        produced = first.produce_file(events)
        wait_all_consumed([first, second], produced)
        first.settle()
        time.sleep(2)
        owners = owner([first, second])
        assert len(owners) == 1, "stage B has exactly one owner"
        streamed = streamed_alerts(first)
        raw = [json.loads(r.value) for r in first.read_topic(first.settings.alerts_topic)]
        assert len(raw) == len(streamed), "no alert version published twice"
        assert len(streamed) >= 5 and streamed == replayed_alerts(events, tmp_path)
        assert sum(w.metric('fraudgraph_change_records_total{direction="sent"}') or 0 for w in (first, second)) > 0
        assert first.metric("fraudgraph_late_events_total") == 0 and second.metric("fraudgraph_late_events_total") == 0
    finally:
        second.stop()


def test_kill_9_of_the_stage_b_owner_loses_nothing_and_doubles_nothing(worker, tmp_path):
    """The survivor takes the dead worker's partitions and stage B over after the session timeout,
    adopts their checkpoints from the checkpoints topic (it never held them: its disk has none), brings
    them up to the committed offsets from the topics, and goes on. The one audit store both wrote to ends
    with replay's alerts and no row twice: investigators query one place, before and after the takeover."""
    events = tmp_path / "events.jsonl"
    simulate(events)
    lines = [line for line in events.read_bytes().splitlines() if line]
    keys = [json.loads(line)["account_id"].encode() for line in lines]
    half = len(lines) // 2
    # The pause around the kill (commit, session timeout, takeover) must not count as idle input: an
    # idle partition's held events are released early, which a replay without the pause does not do.
    first = worker(partitions=4, checkpoint_seconds=5.0, idle_flush_seconds=25.0, instance_id="one")
    second = first.twin("second", shared_audit=True)
    second.settings = replace(second.settings, instance_id="two")
    workers = [first, second]
    try:
        first.launch(), second.launch()
        wait_for(lambda: all(w.metric("fraudgraph_recovering") == 0 and (w.metric("fraudgraph_assigned_partitions") or 0) == 2
                             for w in workers), 120, "two workers with two input partitions each")
        first.produce(lines[:half], keys[:half])
        wait_all_consumed(workers, half)
        time.sleep(7)  # a checkpoint each, and committed offsets
        victim = owner(workers)[0]
        survivor = second if victim is first else first
        os.killpg(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait()
        victim.proc = None
        first.produce(lines[half:], keys[half:])
        wait_for(lambda: survivor.metric("fraudgraph_global_stage_owner") == 1 and
                 survivor.metric("fraudgraph_assigned_partitions") == 4 and survivor.metric("fraudgraph_recovering") == 0,
                 120, "the survivor to take over", survivor.proc)
        assert "of global: offset" in survivor.log(), "stage B adopted from the checkpoints topic"
        assert survivor.metric('fraudgraph_restore{outcome="restored"}') == 1
        wait_for(lambda: survivor.metric("fraudgraph_consumer_lag_messages") == 0, 300, "the survivor to catch up",
                 survivor.proc)
        survivor.settle()
        time.sleep(2)
        assert streamed_alerts(survivor) == replayed_alerts(events, tmp_path)
        assert survivor.settings.audit_db == victim.settings.audit_db
        con = connect_read_only(survivor.settings.audit_db)
        try:
            stored = sorted(con.execute("SELECT alert_id, version, action, severity, member_count FROM alert_history "
                                        "WHERE notify").fetchall())
        finally:
            con.close()
        assert stored == streamed_alerts(survivor), "the one audit store holds every alert version, of both workers"
        writers = {p.name.split("-")[1] for p in Path(survivor.settings.audit_db + ".parts", "alert_versions").glob("*.parquet")
                   if not p.name.startswith("000")}
        assert writers == {"one", "two"}, writers
        assert_nothing_doubled(survivor.settings.audit_db)
    finally:
        second.stop()


def test_workers_resume_by_themselves_after_the_broker_was_away_30_seconds(tmp_path):
    events = tmp_path / "events.jsonl"
    simulate(events)
    lines = [line for line in events.read_bytes().splitlines() if line]
    keys = [json.loads(line)["account_id"].encode() for line in lines]
    half = len(lines) // 2
    with DevKafka() as own_broker:
        first = WorkerHandle(own_broker, tmp_path, 2)
        second = first.twin("second")
        workers = [first, second]
        try:
            first.launch(), second.launch()
            wait_for(lambda: all(w.metric("fraudgraph_recovering") == 0 for w in workers) and
                     sum(w.metric("fraudgraph_assigned_partitions") or 0 for w in workers) == 2, 120,
                     "two workers sharing the input")
            first.produce(lines[:half], keys[:half])
            wait_all_consumed(workers, half)
            own_broker.halt()
            time.sleep(30)
            own_broker.resume()
            first.produce(lines[half:], keys[half:])
            wait_all_consumed(workers, len(lines), timeout=400)
            first.settle()
            time.sleep(2)
            assert all(w.proc.poll() is None for w in workers), "both workers kept running"
            # The outage is idle input to the windows (held events are released early), so the alert
            # versions may differ from a replay without it; the alerted clusters may not.
            replay_db = tmp_path / "replay.duckdb"
            cli(["replay", str(events), "--audit-db", str(replay_db), "--quiet"])
            holder = owner(workers)[0]
            assert alerted_clusters(holder.settings.audit_db) == alerted_clusters(replay_db)
            assert_nothing_doubled(holder.settings.audit_db)
        finally:
            for w in workers:
                w.stop()
