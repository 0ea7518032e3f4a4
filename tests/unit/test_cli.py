"""CLI mistakes get one clear line on stderr and a non-zero exit, never a traceback; `export`
writes every documented table; `verdict` fails fast without a broker and records nothing then."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from streams.sinks.audit import VIEWS
from streams.cli import main as cli

ROOT = Path(__file__).resolve().parents[2]


def fraudgraph(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "streams.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT), **(env or {})), timeout=120)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("cli")
    events = tmp / "events.jsonl"
    cli(["simulate", "--benign", "800", "--ring-scale", "0.05", "--days", "3", "--seed", "3", "--out", str(events)])
    db = tmp / "audit.duckdb"
    cli(["replay", str(events), "--audit-db", str(db), "--quiet"])
    return db


def one_line_error(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_mistakes_get_one_clear_line(store, tmp_path):
    db = ["--audit-db", str(store)]
    one_line_error(fraudgraph("investigate", "cluster", *db), "usage", "CLUSTER_ID")
    one_line_error(fraudgraph("investigate", "entity", "device", *db), "usage")
    one_line_error(fraudgraph("investigate", "entity", "phone", "x", *db), "unknown entity type", "device, payment, ip, template")
    one_line_error(fraudgraph("investigate", "changes", "abc", *db), "HOURS")
    one_line_error(fraudgraph("investigate", "cluster", "C9999999", *db), "not found")
    one_line_error(fraudgraph("investigate", "account", "nobody", *db), "not found")
    one_line_error(fraudgraph("investigate", "entity", "ip", "203.0.113.250", *db), "not found")
    one_line_error(fraudgraph("replay", str(tmp_path / "nosuch.jsonl"), "--audit-db", str(tmp_path / "x.duckdb")),
                   "no such input file")
    one_line_error(fraudgraph("export", "--out", str(tmp_path / "out"), "--since", "yesterday", *db), "--since",
                   "RFC 3339")
    one_line_error(fraudgraph("investigate", "worst", "--audit-db", str(tmp_path / "missing.duckdb")),
                   "no audit store")
    one_line_error(fraudgraph("verdict", "C9999999", "benign", "--no-publish", *db), "not found")
    one_line_error(fraudgraph("verdict", "C0000001", "maybe", *db), "invalid choice: 'maybe'", "--help")
    one_line_error(fraudgraph("replay"), "the following arguments are required: files")
    one_line_error(fraudgraph("simulate", "--out", str(tmp_path)), "is a folder")


def test_simulate_without_a_broker_says_so_in_one_line_within_the_wait():
    started = time.monotonic()
    result = fraudgraph("simulate", "--benign", "50", "--days", "1", "--rings", "1", "--bootstrap", "127.0.0.1:1")
    elapsed = time.monotonic() - started
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "no Kafka broker answered at 127.0.0.1:1" in errors[0], result.stderr
    assert "KafkaTimeoutError: KafkaTimeoutError" not in result.stderr
    assert elapsed < 30, f"gave up after {elapsed:.0f}s; the wait is 10s"


def test_simulate_says_what_it_writes_and_how_much(tmp_path):
    out = tmp_path / "new" / "folder" / "events.jsonl"
    result = fraudgraph("simulate", "--benign", "200", "--days", "1", "--rings", "2", "--ring-scale", "0.1",
                        "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert f"-> {out}" in result.stderr and "--benign and --days make it smaller" in result.stderr
    assert f"-> {out} (" in result.stdout and " MB)" in result.stdout


def test_investigate_answers_for_ids_that_exist(store):
    con = duckdb.connect(str(store), read_only=True)
    cluster, account = con.execute("SELECT cluster_id, account_id FROM cluster_members LIMIT 1").fetchone()
    linked, other, kind, shared = con.execute("""
        SELECT cluster_id, other_cluster_id, entity_type, shared_entities FROM cluster_links
        ORDER BY shared_entities DESC, cluster_id, other_cluster_id LIMIT 1""").fetchone()
    size = con.execute("SELECT size FROM clusters WHERE cluster_id = ?", [linked]).fetchone()[0]
    con.close()
    for args in (["worst"], ["cluster", cluster], ["account", account], ["changes", "2"]):
        result = fraudgraph("investigate", *args, "--audit-db", str(store))
        assert result.returncode == 0 and result.stdout.strip(), (args, result.stderr)
    out = fraudgraph("investigate", "cluster", linked, "--audit-db", str(store)).stdout
    assert out.startswith(f"{linked}: {size:,} accounts, "), "the headline: the operation and its damage"
    assert f"shares {shared:,} {'IPs' if kind == 'ip' else 'prompt templates'} with {other} (" in out


def test_export_writes_every_documented_table(store, tmp_path):
    out = tmp_path / "export"
    result = fraudgraph("export", "--out", str(out), "--audit-db", str(store), "--since", "2026-01-01T00:00:00Z")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "warning" not in result.stderr.lower(), result.stderr
    con = duckdb.connect()
    for name in VIEWS:
        table = con.execute(f"SELECT * FROM read_parquet('{out / (name + '.parquet')}')")
        columns = [d[0] for d in table.description]
        assert columns, name
    age = con.execute(f"SELECT typeof(age_seconds) FROM read_parquet('{out / 'freshness.parquet'}')").fetchone()[0]
    assert age == "DOUBLE"
    assert con.execute(f"SELECT count(*) FROM read_parquet('{out / 'alerts.parquet'}')").fetchone()[0] > 0


def test_verdict_without_a_broker_fails_fast_and_records_nothing(store):
    con = duckdb.connect(str(store), read_only=True)
    cluster = con.execute("SELECT cluster_id FROM clusters LIMIT 1").fetchone()[0]
    before = con.execute("SELECT count(*) FROM verdicts").fetchone()[0]
    con.close()
    started = time.monotonic()
    result = fraudgraph("verdict", cluster, "benign", "--note", "test", "--bootstrap", "127.0.0.1:1",
                        "--audit-db", str(store))
    elapsed = time.monotonic() - started
    one_line_error(result, "not recorded")
    assert elapsed < 30, f"gave up after {elapsed:.0f}s; the publish timeout is 10s"
    con = duckdb.connect(str(store), read_only=True)
    assert con.execute("SELECT count(*) FROM verdicts").fetchone()[0] == before
    con.close()


def test_the_analyst_defaults_to_a_uid_when_the_user_has_no_name(monkeypatch):
    import getpass

    from streams.cli import analyst_name

    def no_passwd_entry() -> str:
        raise KeyError("getpwuid(): uid not found: 12345")

    monkeypatch.setattr(getpass, "getuser", no_passwd_entry)
    assert analyst_name(None).startswith("uid-")
    assert analyst_name("alice") == "alice"


def test_replay_dead_letters_poison_lines_and_goes_on(tmp_path):
    events = tmp_path / "events.jsonl"
    cli(["simulate", "--benign", "300", "--ring-scale", "0.05", "--days", "2", "--seed", "4", "--out", str(events)])
    lines = events.read_bytes().splitlines()
    poison = [b'{"x":' + b"[" * 10_000 + b"]" * 10_000 + b"}",
              b'{"event_id":"a\xff","type":"login","account_id":"x","ts":"2026-01-05T00:00:00Z"}']
    events.write_bytes(b"\n".join(lines[:50] + poison + lines[50:]) + b"\n")
    db = tmp_path / "audit.duckdb"
    result = fraudgraph("replay", str(events), "--audit-db", str(db), "--quiet")
    assert result.returncode == 0, result.stderr
    dead = (tmp_path / "audit.duckdb.dlq.jsonl").read_text().splitlines()
    assert len(dead) == 2 and "nested too deeply" in dead[0] and "UTF-8" in dead[1]


def test_worker_without_a_broker_says_so_in_one_line_within_the_wait(tmp_path):
    started = time.monotonic()
    result = fraudgraph("worker", "--bootstrap", "127.0.0.1:1", "--broker-wait-seconds", "3", "--metrics-port", "0",
                        "--audit-db", str(tmp_path / "audit.duckdb"), "--checkpoint-seconds", "0")
    assert result.returncode == 2
    one_line_error(result, "no Kafka broker answered at 127.0.0.1:1 within 3s")
    assert time.monotonic() - started < 30
    assert not (tmp_path / "audit.duckdb").exists()  # nothing was started
