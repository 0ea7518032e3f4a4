"""Faults and hostile input against the real broker: poison records become dead letters and touch
nothing else; a forged clock cannot blind the detector; reused event ids are dead-lettered; a
verdict tombstone or an unknown cluster changes nothing; a second worker in the group is refused;
SIGTERM with the broker down stops the worker within its grace and the log stays quiet."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import orjson

from streams.dev.broker import DevKafka
from streams.dev.localrun import wait_for
from tests.conftest import T0, ev
from tests.integration.conftest import WorkerHandle, contract_json
from tests.unit.scenarios import farm

YEAR = 365 * 86400.0


def headers_of(record) -> dict[str, str]:
    return {k: v.decode(errors="replace") for k, v in record.headers}


def test_poison_records_skew_and_id_reuse_are_dead_lettered_and_detection_goes_on(worker):
    w = worker().start()
    good_events = farm("f", 120, devices=8)
    good = [contract_json(e) for e in good_events]
    forged = ev("attacker", T0 + 5 * YEAR, device="x", event_id="forged-clock")
    reused = ev("intruder", good_events[3].ts, device="other", event_id=good_events[3].event_id)
    poison = {
        "undecodable": b'{"x":' + b"[" * 10_000 + b"]" * 10_000 + b"}",
        "not_json": b'{"event_id":"a\xff","type":"login","account_id":"x","ts":"2026-01-05T00:00:00Z"}',
        "oversize": b'{"event_id":"big","pad":"' + b"x" * 1_000_000 + b'"}',
        "clock_skew": contract_json(forged),
        "id_conflict": contract_json(reused),
    }
    values = good[:100] + [poison["undecodable"], poison["not_json"], poison["oversize"]] + good[100:200] + \
        [poison["clock_skew"]] + good[200:] + [poison["id_conflict"]]
    w.produce(values)
    w.wait_consumed()
    w.settle()

    dead = w.read_topic(w.settings.dlq_topic)
    kinds = {headers_of(r)["fraudgraph.error.kind"]: r for r in dead}
    assert set(kinds) == set(poison), sorted(kinds)
    assert len(dead) == len(poison)
    big = kinds["oversize"]
    assert int(headers_of(big)["fraudgraph.value.truncated"]) == len(poison["oversize"])
    assert big.value == poison["oversize"][:len(big.value)] and len(big.value) < len(poison["oversize"])
    assert kinds["clock_skew"].value == poison["clock_skew"] and "wall clock" in \
        headers_of(kinds["clock_skew"])["fraudgraph.error.reason"]
    assert w.proc.poll() is None, "the worker is still running"
    assert w.metric("fraudgraph_dead_letters_total") == len(poison)
    assert w.metric("fraudgraph_stage_errors_total") == len(poison)
    for kind in ("undecodable", "not_json", "oversize"):  # the label is the error's kind, not parsed text
        assert w.metric(f'fraudgraph_stage_errors_total{{reason="{kind}",stage="decode"}}') == 1, kind
    for kind in ("clock_skew", "id_conflict"):
        assert w.metric(f'fraudgraph_stage_errors_total{{reason="{kind}",stage="engine"}}') == 1, kind
    assert w.metric('fraudgraph_events_out_total{stage="decode"}') == len(good) + 2  # forged + reused decode fine
    assert w.metric("fraudgraph_event_time_watermark_seconds") < T0 + 86400, "the forged clock moved nothing"
    assert w.metric("fraudgraph_consumer_lag_messages") == 0 and w.metric("fraudgraph_assigned_partitions") == 1
    assert w.metric("fraudgraph_open_alerts") >= 1, "the farm is still detected"
    open_alerts = w.metric("fraudgraph_open_alerts")

    # An event older than the window is counted, not applied.
    w.produce([contract_json(ev("ancient", T0 - 30 * 86400, device="old", event_id="ancient"))])
    w.wait_consumed()
    wait_for(lambda: w.metric("fraudgraph_too_old_events_total") == 1, 30, "the too-old counter")

    # A verdict tombstone and a verdict for a cluster that does not exist change nothing and are counted.
    w.produce_to(w.settings.verdicts_topic, [None, orjson.dumps({"cluster_id": "C9999999", "verdict": "benign"})])
    wait_for(lambda: w.metric('fraudgraph_verdicts_total{outcome="malformed"}') == 1
             and w.metric('fraudgraph_verdicts_total{outcome="unknown_cluster"}') == 1, 30, "the verdicts counted")
    assert w.proc.poll() is None
    assert w.metric("fraudgraph_open_alerts") == open_alerts


def test_recovery_publishes_nothing_and_moves_no_counter(worker):
    w = worker().start()
    w.produce([contract_json(e) for e in farm("f", 120, devices=8)])
    w.wait_consumed()
    w.settle()
    assert w.metric("fraudgraph_alerts_total") >= 1
    alerts_before = len(w.read_topic(w.settings.alerts_topic))
    time.sleep(4)  # Faust commits offsets every few seconds
    os.killpg(w.proc.pid, signal.SIGKILL)
    w.proc.wait()
    leftover = next((w.tmp / "audit.duckdb.parts" / "alert_versions").glob("*.parquet"))
    torn = leftover.parent / ".interrupted-flush.parquet.tmp"
    torn.write_bytes(b"partial")
    os.utime(torn, (time.time() - 3600, time.time() - 3600))  # a crash's leftover, not a write in progress

    w.start()
    assert w.metric("fraudgraph_recovering") == 0 and w.metric("fraudgraph_recovered_records") > 0
    time.sleep(3)
    assert w.metric("fraudgraph_alerts_total") == 0, "alerts re-derived by recovery are not counted again"
    assert (w.metric('fraudgraph_events_in_total{stage="decode"}') or 0) == 0
    assert len(w.read_topic(w.settings.alerts_topic)) == alerts_before, "recovery published nothing"
    assert not list((w.tmp / "audit.duckdb.parts").glob("*/.*.tmp")), "temp segments are cleaned at start"


def test_partitions_added_under_a_running_worker_stop_it_and_its_restart_rebuilds(worker):
    """The engine has a window per input partition: a partition count that changes under it stops
    the worker loudly (exit status 3); the restart refuses the checkpoint of the old count and
    rebuilds from the topics — never a graph silently split. (Checkpoints on disk: with them in Kafka the
    changes topic is trimmed, and stage B waits for its own checkpoint instead: ``test_takeover.py``.)"""
    from kafka import KafkaAdminClient
    from kafka.admin import NewPartitions

    w = worker(partitions=2, checkpoint_seconds=2.0, checkpoint_store="disk").start()
    w.produce([contract_json(e) for e in farm("f", 120, devices=8)])
    w.wait_consumed()
    time.sleep(5)  # a checkpoint of the two windows
    admin = KafkaAdminClient(bootstrap_servers=w.broker.bootstrap)
    try:
        admin.create_partitions({w.settings.events_topic: NewPartitions(3)})
    finally:
        admin.close()
    assert w.proc.wait(timeout=120) == 3
    assert "now has 3 partitions, the engine was built for 2" in w.log()
    w.start()
    assert w.metric('fraudgraph_restore{outcome="incompatible"}') == 1, w.log()
    assert w.metric("fraudgraph_recovered_records") == w.produced, "rebuilt from the whole topic"
    assert w.metric("fraudgraph_assigned_partitions") == 3


def test_sigterm_with_the_broker_down_stops_within_the_grace_and_the_log_stays_quiet(tmp_path):
    with DevKafka() as own_broker:
        w = WorkerHandle(own_broker, tmp_path)
        w.start()
        w.produce([contract_json(e) for e in farm("f", 20, devices=4)])
        w.wait_consumed()
        own_broker.stop()
        time.sleep(15)  # the worker keeps trying to reach the broker
        before = sum(1 for line in w.log().splitlines() if "ERROR" in line)
        started = time.monotonic()
        os.killpg(w.proc.pid, signal.SIGTERM)
        try:
            w.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError("the worker did not stop within 30 s of SIGTERM") from None
        stopped_after = time.monotonic() - started
        print(f"stopped {stopped_after:.1f}s after SIGTERM with the broker down; {before} ERROR lines in 15 s")
        assert stopped_after < w.settings.stop_grace_seconds + 10
        assert 0 < before < 60, f"{before} ERROR lines in 15 s of broker downtime (unfiltered: ~100 a second)"
        assert "similar lines suppressed" in w.log()
        w.proc = None
