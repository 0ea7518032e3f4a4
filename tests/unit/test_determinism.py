"""The same input gives the same alerts, alert versions and lineage in any process: two `replay`
runs of one file under different PYTHONHASHSEEDs must agree row for row (string hashing differs per
process, so any outcome decided by set or dict order of strings shows up here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import orjson

from streams.cli import main as cli

ROOT = Path(__file__).resolve().parents[2]


def audit_rows(db: Path) -> dict[str, list[tuple]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {
            "alert_history": con.execute("""
                SELECT alert_id, version, cluster_id, action, severity, score, member_count, detected_at, alerted_at,
                       reason, features, evidence FROM alert_history ORDER BY ALL""").fetchall(),
            "alert_members": con.execute("SELECT alert_id, version, account_id, added FROM alert_member_changes "
                                         "ORDER BY ALL").fetchall(),
            "lineage": con.execute("SELECT * FROM cluster_lineage ORDER BY ALL").fetchall(),
            "clusters": con.execute("""
                SELECT cluster_id, snapshot_at, size, score, severity, features FROM cluster_snapshots
                ORDER BY ALL""").fetchall(),
            # the links behind alerts' new members, read at the tick each alert gained them
            "account_links": con.execute("SELECT * FROM account_link_rows ORDER BY ALL").fetchall(),
        }
    finally:
        con.close()


def test_replay_in_processes_with_different_hash_seeds_gives_identical_audit_rows(tmp_path):
    events = tmp_path / "events.jsonl"
    # This traffic made the old engine's clusters depend on the hash seed (a walk that missed a merge).
    cli(["simulate", "--benign", "4000", "--ring-scale", "0.2", "--seed", "5", "--out", str(events)])
    results = []
    for seed in ("1", "2"):
        db = tmp_path / f"audit-{seed}.duckdb"
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(ROOT))
        subprocess.run([sys.executable, "-m", "streams.cli", "replay", str(events), "--audit-db", str(db), "--quiet"],
                       cwd=ROOT, env=env, check=True, capture_output=True)
        results.append(audit_rows(db))
    first, second = results
    assert len(first["alert_history"]) > 100 and len(first["lineage"]) > 100 and len(first["account_links"]) > 100
    for table in first:
        assert first[table] == second[table], table


def test_replay_in_batches_of_any_size_gives_identical_audit_rows(tmp_path):
    """A worker's batches follow its Kafka fetches: how the events are cut into batches must not show in
    the audit store (a cluster that went is stamped with its tick, not with the end of the batch)."""
    from graph import DetectionConfig, DetectionEngine
    from streams.sinks.audit import AuditStore
    from streams.runtime.pipeline import Pipeline
    from streams.replay import replay

    events = tmp_path / "events.jsonl"
    cli(["simulate", "--benign", "3000", "--ring-scale", "0.1", "--days", "9", "--seed", "7", "--out", str(events)])
    results = []
    # one thread for both stages; then stage A on a thread of its own (a split engine: fraudgraph replay)
    for batch, split in ((5000, False), (777, False), (777, True)):
        db = tmp_path / f"audit-{batch}-{split}.duckdb"
        audit = AuditStore(db, clock=lambda: 0.0)
        audit.create()
        replay([events], Pipeline(DetectionEngine(DetectionConfig(), clock=lambda: 0.0, split=split), audit,
                                  wall=lambda: 0.0), batch=batch, progress=False)
        results.append(audit_rows(db))
    first, *others = results
    con = duckdb.connect(str(tmp_path / "audit-5000-False.duckdb"), read_only=True)
    gone = con.execute("SELECT count(*) FROM cluster_snapshots WHERE status = 'gone'").fetchone()[0]
    con.close()
    assert gone > 0 and len(first["alert_history"]) > 20 and len(first["account_links"]) > 100, (
        gone, len(first["alert_history"]), len(first["account_links"]))
    for other in others:
        for table in first:
            assert first[table] == other[table], table


def test_replay_with_its_stages_apart_dead_letters_what_one_thread_does(tmp_path):
    """``fraudgraph replay`` runs stage A on a thread of its own: every refused line (bad JSON, a reused
    event id with other content, an event years ahead that the clock guard holds before it refuses it,
    across batches) is dead-lettered, with its text, as it is with both stages on one thread."""
    from graph import DetectionConfig, DetectionEngine
    from streams.runtime.pipeline import Pipeline
    from streams.replay import replay

    events = tmp_path / "events.jsonl"
    cli(["simulate", "--benign", "600", "--ring-scale", "0.05", "--days", "2", "--seed", "4", "--out", str(events)])
    lines = events.read_bytes().splitlines()
    twin = lines[400].replace(b'"account_id":"', b'"account_id":"intruder-', 1)  # its event id, other content
    ahead = b'{"event_id":"ahead","type":"login","account_id":"x","ts":"2031-01-05T00:00:00Z","device_id":"d"}'
    hostile = lines[:300] + [b'{"event_id": 1', ahead] + lines[300:700] + [twin, b"[]"] + lines[700:]
    events.write_bytes(b"\n".join(hostile) + b"\n")
    results = []
    for split in (False, True):
        dlq = tmp_path / f"dead-{split}.jsonl"
        totals = replay([events], Pipeline(DetectionEngine(DetectionConfig(), clock=lambda: 0.0, split=split),
                                           wall=lambda: 0.0), dlq, batch=250, progress=False)
        results.append(dlq.read_bytes())
        assert totals["records"] == len(hostile) and totals["dead"] == 4, totals
    together, apart = results
    assert together == apart
    dead = [orjson.loads(line) for line in apart.splitlines()]
    assert [d["line"] for d in dead] == [301, 302, 703, 704]
    assert dead[1]["value"].encode() == ahead and dead[2]["value"].encode() == twin
