"""A crash (kill -9) and restart loses nothing and doubles nothing: the final alerts equal a replay
of the same events, and no alert row appears twice."""

from __future__ import annotations

import os
import signal
import time

from streams.sinks.audit import connect_read_only
from streams.cli import main as cli
from tests.integration.test_end_to_end import alerted_clusters, simulate


def test_kill_and_restart_mid_stream(worker, tmp_path):
    events = tmp_path / "events.jsonl"
    simulate(events)
    lines = [line for line in events.read_bytes().splitlines() if line]
    half = len(lines) // 2

    w = worker().start()
    w.produce(lines[:half])
    w.wait_consumed()
    time.sleep(4)  # Faust commits offsets every ~3 s
    os.killpg(w.proc.pid, signal.SIGKILL)
    w.proc.wait()

    w.start()  # same group, same audit store: rebuilds the window from the topic, then resumes
    assert 0 < w.metric("fraudgraph_recovered_records") <= half, "recovery re-read what was committed"
    w.produce(lines[half:])
    w.wait_consumed()
    w.settle()
    assert w.consumed() >= len(lines)

    replay_db = tmp_path / "replay.duckdb"
    cli(["replay", str(events), "--audit-db", str(replay_db), "--quiet"])
    assert alerted_clusters(w.settings.audit_db) == alerted_clusters(replay_db)
    assert_nothing_doubled(w.settings.audit_db)


def assert_nothing_doubled(db) -> None:
    """No alert, alert version or lineage row appears twice in the audit store."""
    con = connect_read_only(db)
    try:
        assert con.execute("SELECT count(*) - count(DISTINCT alert_id) FROM alerts").fetchone()[0] == 0
        assert con.execute("SELECT count(*) - count(DISTINCT (alert_id, version)) FROM alert_history").fetchone()[0] == 0
        assert con.execute("""SELECT count(*) FROM (SELECT cluster_id, kind, happened_at, other_cluster_id
                                                    FROM cluster_lineage GROUP BY ALL HAVING count(*) > 1)""").fetchone()[0] == 0
    finally:
        con.close()
