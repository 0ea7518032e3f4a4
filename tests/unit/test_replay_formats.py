"""`replay` reads .jsonl, .jsonl.gz and .parquet through the same pipeline: same alerts from each;
an invalid line goes to the dead-letter file with its reason and line number."""

import gzip
import json

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from streams.cli import main as cli


def alerts(db):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT alert_id, severity, member_count FROM alerts ORDER BY alert_id").fetchall()
    finally:
        con.close()


def test_all_input_formats_give_the_same_alerts(tmp_path):
    plain = tmp_path / "events.jsonl"
    cli(["simulate", "--benign", "800", "--ring-scale", "0.05", "--days", "3", "--seed", "3", "--out", str(plain)])
    lines = plain.read_bytes().splitlines()
    with gzip.open(tmp_path / "events.jsonl.gz", "wb") as handle:
        handle.write(b"\n".join(lines[:100] + [b'{"event_id": "broken"'] + lines[100:]) + b"\n")
    rows = [json.loads(line) for line in lines]
    columns = sorted({k for r in rows for k in r})
    pq.write_table(pa.Table.from_pylist([{k: r.get(k) for k in columns} for r in rows]), tmp_path / "events.parquet")

    results = []
    for name in ("events.jsonl", "events.jsonl.gz", "events.parquet"):
        db = tmp_path / f"{name}.duckdb"
        cli(["replay", str(tmp_path / name), "--audit-db", str(db), "--quiet"])
        results.append(alerts(db))
    assert results[0] and results[0] == results[1] == results[2]

    dead = [json.loads(line) for line in (tmp_path / "events.jsonl.gz.duckdb.dlq.jsonl").read_text().splitlines()]
    assert len(dead) == 1 and dead[0]["line"] == 101 and "not valid JSON" in dead[0]["reason"]


def test_investigate_answers_the_common_questions(tmp_path, capsys):
    events = tmp_path / "events.jsonl"
    cli(["simulate", "--benign", "800", "--ring-scale", "0.05", "--days", "3", "--seed", "3", "--out", str(events)])
    db = str(tmp_path / "audit.duckdb")
    cli(["replay", str(events), "--audit-db", db, "--quiet"])
    con = duckdb.connect(db, read_only=True)
    cluster, account, kind, value = con.execute("""
        SELECT c.cluster_id, m.account_id, e.entity_type, e.entity_value
        FROM alerts a JOIN clusters c USING (cluster_id) JOIN cluster_members m USING (cluster_id)
        JOIN cluster_evidence e USING (cluster_id) WHERE e.entity_type <> 'ip'
        ORDER BY c.size DESC, c.cluster_id, m.account_id DESC, e.entity_value LIMIT 1""").fetchone()
    con.close()
    capsys.readouterr()
    for what in (["worst"], ["cluster", cluster], ["account", account], ["entity", kind, value], ["changes", "24"]):
        cli(["investigate", *what, "--audit-db", db])
    out = capsys.readouterr().out
    assert cluster in out and account in out and value in out
    cluster_view = out.split("\nevidence (", 1)[1].split("\nmembers", 1)[0]
    assert "shared infrastructure" in cluster_view and "\ntimeline" in cluster_view
    assert "(no rows)" not in cluster_view, "a cluster that alerted shows its evidence and its timeline"


def test_the_store_opens_for_writing_while_an_investigator_holds_it(tmp_path):
    import subprocess
    import sys

    from streams.sinks.audit import AuditStore

    path = tmp_path / "audit.duckdb"
    AuditStore(path).create()
    holder = subprocess.Popen(  # an investigator's session, open for as long as it likes
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True); "
         "print('open', flush=True); time.sleep(60)", str(path)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"open"
        again = AuditStore(path)
        again.create(wait_seconds=1.0)  # keeps the existing views instead of failing
        again.add_verdict("v1", "C0000001", "benign", "alice", "note", 1_767_571_200.0)
        assert again.flush() == 1
        reader = duckdb.connect(str(path), read_only=True)
        assert reader.execute("SELECT count(*) FROM verdicts").fetchone()[0] == 1
        reader.close()
    finally:
        holder.kill()
        holder.wait()


def test_a_file_that_breaks_off_stops_replay_with_its_error_and_its_reading_thread(tmp_path):
    """Replay reads on a thread of its own (stage A): a read error is raised in the caller, what came
    before it is applied, and the thread does not outlive the call."""
    import threading

    import pytest

    from graph import DetectionConfig, DetectionEngine
    from streams.runtime.pipeline import Pipeline
    from streams.replay import replay

    plain = tmp_path / "events.jsonl"
    cli(["simulate", "--benign", "800", "--ring-scale", "0.05", "--days", "3", "--seed", "3", "--out", str(plain)])
    broken = tmp_path / "events.jsonl.gz"
    broken.write_bytes(gzip.compress(plain.read_bytes())[:200_000])
    engine = DetectionEngine(DetectionConfig(), clock=lambda: 0.0, split=True)
    with pytest.raises(EOFError):
        replay([broken], Pipeline(engine, wall=lambda: 0.0), batch=500, progress=False)
    assert engine.graph.stats()["accounts"] > 0, "the batches read before the break were applied"
    assert not [t for t in threading.enumerate() if t.name == "stage-a"]
