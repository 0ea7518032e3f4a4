"""What a downstream service reads from Kafka, on traffic the rules were not designed from: the
held-out red-team families (streams/dev/sim/families.py) beside benign traffic and rings, through one
worker on a real broker. The accounts whose latest record on fraud-flagged-accounts is flagged are
exactly the members of `replay`'s open actionable alerts, and the latest version of every open
actionable alert on fraud-alerts has `replay`'s member count (throttled while it grew, settled when the
stream went quiet)."""

from __future__ import annotations

import json
from collections import Counter

from streams.cli import main as cli
from streams.sinks.audit import connect_read_only


def actionable_alerts(db) -> dict[str, set[str]]:
    con = connect_read_only(db)
    try:
        rows = con.execute("""
            SELECT a.alert_id, list(m.account_id) FROM alerts a JOIN alert_members m USING (alert_id)
            WHERE a.status = 'open' AND a.severity IN ('medium', 'high') GROUP BY a.alert_id""").fetchall()
    finally:
        con.close()
    return {alert: set(members) for alert, members in rows}


def test_the_feed_ends_on_replays_truth_on_held_out_families(worker, tmp_path):
    events = tmp_path / "events.jsonl"
    cli(["simulate", "--benign", "1500", "--ring-scale", "0.05", "--days", "3", "--seed", "11", "--families", "held-out",
         "--family-instances", "1", "--family-max-size", "400", "--out", str(events)])
    w = worker().start()
    w.produce_file(events)
    w.wait_consumed()
    w.settle()

    replay_db = tmp_path / "replay.duckdb"
    cli(["replay", str(events), "--audit-db", str(replay_db), "--quiet"])
    replayed = actionable_alerts(replay_db)
    assert len(replayed) >= 3, "the held-out operations are caught"

    latest = {r.key.decode(): json.loads(r.value) for r in w.read_topic(w.settings.flagged_topic)}
    assert {a for a, v in latest.items() if v["flagged"]} == set().union(*replayed.values())
    assert all(v["severity"] in ("medium", "high") for v in latest.values() if v["flagged"])

    last: dict[str, dict] = {}
    for m in (json.loads(r.value) for r in w.read_topic(w.settings.alerts_topic)):
        if m["version"] > last.get(m["alert_id"], {"version": -1})["version"]:
            last[m["alert_id"]] = m
    on_topic = Counter(m["member_count"] for m in last.values()
                       if m["action"] != "closed" and m["severity"] in ("medium", "high"))
    assert on_topic == Counter(len(members) for members in replayed.values())
