"""The whole path on a real broker: simulator -> Kafka -> Faust worker -> fraud-alerts, DuckDB, /metrics;
and `replay` of the same traffic gives the same clusters."""

from __future__ import annotations

import json
import re

import duckdb

from streams.sinks.audit import connect_read_only
from streams.cli import main as cli
from streams.dev.report import evaluate, read_labels


def simulate(path, *extra: str) -> None:
    cli(["simulate", "--benign", "1500", "--ring-scale", "0.08", "--seed", "7", "--out", str(path),
         "--labels", str(path.with_suffix(".labels.csv")), *extra])


def alerted_clusters(db) -> set[tuple[str, frozenset[str]]]:
    con = connect_read_only(db)
    try:
        rows = con.execute("""
            SELECT a.severity, list(m.account_id ORDER BY m.account_id)
            FROM alerts a JOIN alert_members m USING (alert_id)
            WHERE a.status = 'open' GROUP BY a.alert_id, a.severity""").fetchall()
    finally:
        con.close()
    return {(severity, frozenset(members)) for severity, members in rows}


def test_stream_finds_the_planted_rings_and_replay_agrees(worker, tmp_path):
    clean, noisy = tmp_path / "clean.jsonl", tmp_path / "noisy.jsonl"
    simulate(clean)
    simulate(noisy, "--duplicates", "0.05", "--late", "0.2")  # the same traffic, delivered badly
    labels = read_labels(clean.with_suffix(".labels.csv"))

    w = worker().start()
    w.produce_file(noisy)
    w.wait_consumed()
    w.settle()

    # 1. fraud-alerts holds the alerts, as JSON
    messages = [json.loads(r.value) for r in w.read_topic(w.settings.alerts_topic)]
    assert any(m["severity"] == "high" for m in messages) and messages[0]["action"] == "opened"
    assert all({"alert_id", "version", "cluster_id", "severity", "evidence", "detected_at"} <= set(m) for m in messages)

    # 2. the DuckDB audit store holds the same alerts
    con = connect_read_only(w.settings.audit_db)
    try:
        stored = dict(con.execute("SELECT alert_id, severity FROM alerts").fetchall())
        assert {m["alert_id"] for m in messages} == set(stored)
        assert con.execute("SELECT count(*) FROM cluster_evidence").fetchone()[0] > 0
    finally:
        con.close()

    # 2b. fraud-flagged-accounts, read as the compacted topic it is (the latest record per account), names
    # exactly the members of the open medium and high alerts in the audit store
    latest = {r.key.decode(): json.loads(r.value) for r in w.read_topic(w.settings.flagged_topic)}
    con = connect_read_only(w.settings.audit_db)
    try:
        actionable = {row[0] for row in con.execute(
            "SELECT DISTINCT m.account_id FROM alert_members m JOIN alerts a USING (alert_id) "
            "WHERE a.status = 'open' AND a.severity IN ('medium', 'high')").fetchall()}
    finally:
        con.close()
    assert len(actionable) >= 50 and {a for a, v in latest.items() if v["flagged"]} == actionable

    # 3. /metrics counts the same publications
    assert w.metric("fraudgraph_alerts_total") == len(messages)
    assert w.metric("fraudgraph_duplicate_events_total") > 0
    assert w.metric("fraudgraph_dead_letters_total") == 0

    # 3b. the log is text for a file: no terminal codes (Faust's spinner)
    assert "\x1b[" not in w.log(), "terminal escape codes in the worker's log"
    # 3c. a healthy start on a fresh broker logs no ERROR (e.g. the client's "topic not found")
    errors = [line for line in w.log().splitlines() if re.search(r"(\[| )ERROR(\]| )", line)]
    assert errors == [], errors[:5]

    # Quality on this small run: every planted ring of >= 50 accounts caught, no innocent flagged.
    streamed = alerted_clusters(w.settings.audit_db)
    quality = evaluate({str(i): (s, set(m)) for i, (s, m) in enumerate(streamed)}, labels, min_ring=50)
    assert quality.false_positives == 0
    assert quality.recall == 1.0

    # 4. replay of the clean file (no duplicates, in order) gives the same clusters
    replay_db = tmp_path / "replay.duckdb"
    cli(["replay", str(clean), "--audit-db", str(replay_db), "--quiet"])
    assert alerted_clusters(replay_db) == streamed

    # 5. what a downstream service reads from Kafka ends on replay's truth: the flagged accounts are
    # replay's open actionable alerts' members, and the latest version of every open actionable alert on
    # fraud-alerts has replay's member count (throttled while growing, settled when the stream is quiet)
    replayed = {(severity, members) for severity, members in alerted_clusters(replay_db) if severity in ("medium", "high")}
    assert {a for a, v in latest.items() if v["flagged"]} == set().union(*(m for _s, m in replayed))
    last: dict[str, dict] = {}
    for m in messages:
        if m["version"] > last.get(m["alert_id"], {"version": -1})["version"]:
            last[m["alert_id"]] = m
    on_topic = sorted(m["member_count"] for m in last.values()
                      if m["action"] != "closed" and m["severity"] in ("medium", "high"))
    assert on_topic == sorted(len(members) for _s, members in replayed)


def test_replay_is_deterministic_and_idempotent(tmp_path):
    events = tmp_path / "events.jsonl.gz"
    simulate(events)
    db = tmp_path / "audit.duckdb"
    counts = []
    for _ in range(2):  # the same input twice into the same store: nothing doubles
        cli(["replay", str(events), "--audit-db", str(db), "--quiet"])
        con = duckdb.connect(str(db), read_only=True)
        counts.append(con.execute("""SELECT (SELECT count(*) FROM alerts), (SELECT count(*) FROM alert_members),
                                            (SELECT count(*) FROM cluster_lineage), (SELECT count(*) FROM clusters),
                                            (SELECT count(*) FROM alert_history)""").fetchone())
        con.close()
    assert counts[0] == counts[1] and counts[0][0] > 0


def test_four_partitions_give_the_alerts_and_versions_of_replay(worker, tmp_path):
    """A worker reading a 4-partition topic (a window per partition, ticks merged across them) publishes
    the same alert versions as `replay` of the same events."""
    events = tmp_path / "events.jsonl"
    simulate(events)
    w = worker(partitions=4).start()
    assert "4 input partition(s)" in w.log()
    w.produce_file(events)
    w.wait_consumed()
    w.settle()
    streamed = sorted((m["alert_id"], m["version"], m["action"], m["severity"], m["member_count"])
                      for m in (json.loads(r.value) for r in w.read_topic(w.settings.alerts_topic)))
    assert w.metric("fraudgraph_late_events_total") == 0, "partitions are not late against each other"

    replay_db = tmp_path / "replay.duckdb"
    cli(["replay", str(events), "--audit-db", str(replay_db), "--quiet"])
    con = connect_read_only(replay_db)
    try:
        replayed = sorted(con.execute("SELECT alert_id, version, action, severity, member_count FROM alert_history "
                                      "WHERE notify").fetchall())
    finally:
        con.close()
    assert len(streamed) >= 5 and streamed == replayed
