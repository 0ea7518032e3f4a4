"""The flagged-accounts feed: read as a compacted topic (the latest record per account), it names exactly
the members of the open medium and high alerts, after every batch and at the end; a checkpoint's copy
of it goes on the same way; the records validate against the published JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import orjson

from graph import DetectionConfig, DetectionEngine
from streams.cli import main as cli
from streams.replay import read_batches
from streams.runtime.flagged import ACTIONABLE, FlaggedAccounts, encode
from streams.runtime.keys import hmac_hex
from streams.runtime.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "streams" / "schema" / "flagged_account.schema.json").read_text())


def actionable_members(pipeline: Pipeline) -> set[str]:
    return {m for a in pipeline.engine.detector.alerts.open.values() if a.severity in ACTIONABLE for m in a.members}


def test_the_feed_names_the_members_of_open_actionable_alerts(tmp_path):
    events = tmp_path / "events.jsonl"
    cli(["simulate", "--benign", "1500", "--ring-scale", "0.1", "--days", "4", "--seed", "8", "--out", str(events)])
    pipeline = Pipeline(DetectionEngine(DetectionConfig(window_seconds=86400.0), clock=lambda: 0.0), wall=lambda: 0.0)
    topic: dict[str, dict] = {}  # the compacted topic: latest value per key
    kinds = {"true": 0, "false": 0, "severity changes": 0}
    copy = None
    for n, (lines, first) in enumerate(read_batches(events, 4000)):
        emitted = pipeline.handle_lines(lines, first, events.name)
        for record in emitted.flagged:
            value = orjson.loads(encode(record))
            jsonschema.validate(value, SCHEMA)
            old = topic.get(record.account_id)
            if old is not None and old["flagged"] and record.flagged and old["severity"] != record.severity:
                kinds["severity changes"] += 1
            kinds["true" if record.flagged else "false"] += 1
            topic[record.account_id] = value
        assert {a for a, v in topic.items() if v["flagged"]} == actionable_members(pipeline), f"after batch {n}"
        if n == 20:  # from here on, a checkpoint's copy (as a restore builds it) goes on in its place
            copy = FlaggedAccounts.from_json(json.loads(json.dumps(pipeline.flagged_feed.to_json())))
            assert copy.flagged() == pipeline.flagged_feed.flagged()
            pipeline.flagged_feed = copy
    emitted = pipeline.flush_held()
    for record in emitted.flagged:
        topic[record.account_id] = orjson.loads(encode(record))
    flagged = {a for a, v in topic.items() if v["flagged"]}
    assert flagged == actionable_members(pipeline)
    assert len(flagged) >= 50 and kinds["false"] > 0, kinds  # accounts entered and left actionable alerts
    assert copy is not None


def test_a_signed_record_carries_the_hmac_of_its_fields():
    from graph.alerts import AlertUpdate

    feed = FlaggedAccounts()
    (record,) = feed.apply(AlertUpdate("A-C9", "C9", "opened", True, 1, "high", 0.9, 1, 0.0, 1767571200.0, 0.0,
                                       "score", {}, (), ("acct-1",), ()))
    key = b"k" * 32
    value = orjson.loads(encode(record, key))
    signature = value.pop("signature")
    assert signature == hmac_hex(key, orjson.dumps(value, option=orjson.OPT_SORT_KEYS))
    jsonschema.validate({**value, "signature": signature}, SCHEMA)
    assert value == {"account_id": "acct-1", "alert_id": "A-C9", "cluster_id": "C9", "severity": "high",
                     "flagged": True, "version": 1, "reason": "opened", "event_time": "2026-01-05T00:00:00.000Z"}
