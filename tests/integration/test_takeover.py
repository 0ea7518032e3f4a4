"""Checkpoints in Kafka (``--checkpoint-store kafka``, the default), on the real broker: stage B's owner
deletes the changes topic's records its checkpoints cover; a checkpoints topic that refuses writes
costs checkpoints, never detection, and checkpointing resumes by itself when it accepts them again;
checkpoints in the topic that the worker's key did not sign are refused as forged and the state is
rebuilt from the topics. (The takeover itself — kill -9 of stage B's owner, the survivor adopting its
checkpoint — is ``test_scale_out.py``; its time against history is ``tests/benchmarks/takeover.py``.)"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import datetime

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType

from streams.cli import main as cli
from streams.dev.localrun import wait_for
from tests.integration.conftest import contract_json
from tests.integration.test_end_to_end import alerted_clusters, simulate
from tests.unit.scenarios import farm


def log_start(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        tp = TopicPartition(topic, 0)
        return consumer.beginning_offsets([tp])[tp]
    finally:
        consumer.close()


def set_topic_config(bootstrap: str, topic: str, **configs: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                            configs={k.replace("_", "."): v for k, v in configs.items()})])
    finally:
        admin.close()


def written(w) -> float:
    return w.metric('fraudgraph_checkpoints_total{outcome="written"}') or 0


def test_the_changes_topic_is_trimmed_and_a_failing_checkpoint_topic_does_not_stop_detection(worker, tmp_path):
    events = tmp_path / "events.jsonl"
    simulate(events)
    lines = [line for line in events.read_bytes().splitlines() if line]
    half = len(lines) // 2
    w = worker(partitions=2, checkpoint_seconds=2.0).start().wait_owner()
    changes, checkpoints = w.settings.changes_topic_name, w.settings.checkpoints_topic
    w.produce(lines[:half])
    w.wait_consumed()
    before = written(w)
    wait_for(lambda: written(w) >= before + 2, 60, "two checkpoints after the input", w.proc)
    start = log_start(w.broker.bootstrap, changes)
    assert start > 0, "stage B's owner deleted the changes its checkpoints cover"
    wait_for(lambda: (w.metric("fraudgraph_changes_start_offset") or 0) > 0, 30, "the trim metric", w.proc)

    # The checkpoints topic refuses every checkpoint (records larger than it allows): detection goes on
    set_topic_config(w.broker.bootstrap, checkpoints, max_message_bytes="1024")
    wait_for(lambda: (w.metric('fraudgraph_checkpoints_total{outcome="failed"}') or 0) >= 1, 60,
             "a failed checkpoint", w.proc)
    w.produce(lines[half:])
    w.wait_consumed()
    stalled = written(w)
    time.sleep(5)
    assert written(w) == stalled, "no checkpoint written while the topic refuses them"
    assert log_start(w.broker.bootstrap, changes) == start, "no trim without a new checkpoint"

    set_topic_config(w.broker.bootstrap, checkpoints, max_message_bytes="1048576")  # it accepts them again
    wait_for(lambda: written(w) > stalled, 60, "checkpointing to resume by itself", w.proc)
    wait_for(lambda: log_start(w.broker.bootstrap, changes) > start, 60, "the trim to resume", w.proc)
    w.settle()
    w.stop()
    replay_db = tmp_path / "replay.duckdb"
    cli(["replay", str(events), "--audit-db", str(replay_db), "--quiet"])
    assert alerted_clusters(w.settings.audit_db) == alerted_clusters(replay_db)


def test_checkpoints_in_the_topic_the_key_did_not_sign_are_refused(worker, tmp_path):
    """Whoever can write the checkpoints topic cannot plant state without the key. A worker with another
    key refuses every checkpoint there as forged and says so; its windows are rebuilt from the input topic,
    but stage B's history before its checkpoints is gone from the changes topic, so stage B does not run
    on a graph without its history (cluster and alert ids would repeat): it pages, and stage A goes on.
    Back with the right key, stage B adopts its checkpoint, applies and publishes what came meanwhile, and
    the alerts are replay's — nothing lost."""
    events = tmp_path / "events.jsonl"
    simulate(events)
    keys = tmp_path / "a.key", tmp_path / "b.key"
    keys[0].write_text("a" * 32), keys[1].write_text("b" * 32)
    w = worker(partitions=2, checkpoint_seconds=2.0, checkpoint_key_file=str(keys[0])).start()
    w.produce_file(events)
    w.wait_consumed()
    w.settle()
    w.stop()  # graceful: a last checkpoint of each unit, signed with key a, in the topic
    assert log_start(w.broker.bootstrap, w.settings.changes_topic_name) > 0, "the changes topic was trimmed"

    w.start().wait_owner()  # the same key: adopted, nothing re-read
    assert w.metric('fraudgraph_restore{outcome="restored"}') == 1 and w.metric("fraudgraph_recovered_records") == 0
    assert "of global: offset" in w.log()
    w.stop()

    w.settings = replace(w.settings, checkpoint_key_file=str(keys[1]))
    w.start()
    wait_for(lambda: w.metric("fraudgraph_stage_b_blocked") == 1, 60, "stage B to say it cannot run", w.proc)
    assert w.metric('fraudgraph_restore{outcome="forged"}') == 1, w.log()
    assert "signature does not match" in w.log() and "stage B cannot run" in w.log()
    assert w.metric("fraudgraph_recovered_records") == w.produced, "the windows rebuilt from the input topic"
    assert w.metric("fraudgraph_global_stage_owner") == 0
    # meanwhile a new ring arrives: stage A takes it, the changes topic keeps it
    last = max(json.loads(line)["ts"] for line in events.read_bytes().splitlines() if line)
    late = [contract_json(e) for e in farm("late", 150, devices=10, t=iso_seconds(last) + 600)]
    (tmp_path / "late.jsonl").write_bytes(b"\n".join(late) + b"\n")
    alerts_before = len(w.read_topic(w.settings.alerts_topic))
    w.produce(late)
    w.wait_consumed()
    w.settle()
    w.stop()

    w.settings = replace(w.settings, checkpoint_key_file=str(keys[0]))
    w.start().wait_owner()
    assert w.metric("fraudgraph_stage_b_blocked") in (0, None)
    w.settle()
    w.stop()
    assert len(w.read_topic(w.settings.alerts_topic)) > alerts_before, "the new ring's alerts were published"
    replay_db = tmp_path / "replay.duckdb"
    cli(["replay", str(events), str(tmp_path / "late.jsonl"), "--audit-db", str(replay_db), "--quiet"])
    assert alerted_clusters(w.settings.audit_db) == alerted_clusters(replay_db)


def iso_seconds(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
