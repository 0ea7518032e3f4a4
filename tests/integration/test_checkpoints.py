"""Restart from checkpoints on the worker's own disk (``--checkpoint-store disk``): a worker killed
with SIGKILL adopts each unit's newest checkpoint (its partition's window, stage B) and re-reads only the
records after it; a graceful stop writes a last one; a damaged latest checkpoint falls back to the
previous one, and damaged ones altogether to a full rebuild from the topic — with a log line and
``fraudgraph_restore{outcome=...}`` — and every path ends with the alerts of a replay. Nothing is
published or counted while restoring. (Checkpoints in Kafka, adopted by another worker:
``test_takeover.py``.)"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import replace
from pathlib import Path

from streams.cli import main as cli
from streams.dev.localrun import wait_for
from tests.integration.test_end_to_end import alerted_clusters, simulate
from tests.integration.test_restart import assert_nothing_doubled


UNITS = ("window-0", "global")  # one input partition


def damage(directory: Path, name: str) -> None:
    for unit in UNITS:
        path = directory / unit / name
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])  # a torn write


def exists(directory: Path, name: str) -> bool:
    return all((directory / unit / name).is_file() for unit in UNITS)


def test_restart_restores_the_checkpoint_and_reads_only_the_tail(worker, tmp_path):
    events = tmp_path / "events.jsonl"
    simulate(events)
    lines = [line for line in events.read_bytes().splitlines() if line]
    half = len(lines) // 2
    w = worker(checkpoint_seconds=2.0, checkpoint_store="disk")
    directory = Path(w.settings.checkpoint_path)

    w.start()
    assert w.metric('fraudgraph_restore{outcome="missing"}') == 1
    w.produce(lines[:half])
    w.wait_consumed()
    consumed_at = time.time()
    # a checkpoint written after the input was consumed, then Faust's commit (every ~3 s)
    wait_for(lambda: (w.metric("fraudgraph_last_checkpoint_timestamp_seconds") or 0) > consumed_at + 1, 60,
             "a checkpoint after the input", w.proc)
    time.sleep(4)
    os.killpg(w.proc.pid, signal.SIGKILL)
    w.proc.wait()
    first_half = {unit: (directory / unit / "latest.ckpt").read_bytes() for unit in UNITS}  # lines[:half] (used below)

    w.start().wait_owner()  # restores: re-reads what came after the checkpoint (here nothing), not the topic
    assert w.metric('fraudgraph_restore{outcome="restored"}') == 1
    assert w.metric("fraudgraph_recovered_records") == 0, w.log()
    assert (w.metric("fraudgraph_alerts_total") or 0) == 0, "a restore publishes and counts nothing"
    assert "latest.ckpt of window-0: offset" in w.log() and "latest.ckpt of global: offset" in w.log()
    w.produced = 0  # this process counts only what it consumes from here
    w.produce(lines[half:])
    w.wait_consumed()
    w.settle()
    w.stop()  # graceful: writes a last checkpoint
    assert exists(directory, "latest.ckpt") and exists(directory, "previous.ckpt")

    w.start().wait_owner()
    assert w.metric('fraudgraph_restore{outcome="restored"}') == 1 and w.metric("fraudgraph_recovered_records") == 0
    w.stop()

    # the latest one damaged, the previous one the checkpoint of the first half: restored from it, and
    # exactly the second half re-read
    damage(directory, "latest.ckpt")
    for unit in UNITS:
        (directory / unit / "previous.ckpt").write_bytes(first_half[unit])
    w.start().wait_owner()
    assert w.metric('fraudgraph_restore{outcome="restored"}') == 1
    assert "previous.ckpt of window-0: offset" in w.log() and "checksum mismatch" in w.log()
    assert w.metric("fraudgraph_recovered_records") == len(lines) - half
    w.stop()

    for name in ("latest.ckpt", "previous.ckpt"):
        damage(directory, name)
    w.start().wait_owner()  # nothing usable: a full rebuild from the topic, said so
    assert w.metric('fraudgraph_restore{outcome="corrupt"}') == 1
    assert w.metric("fraudgraph_recovered_records") == len(lines)
    assert "rebuilding it from the topic" in w.log()
    assert (w.metric("fraudgraph_alerts_total") or 0) == 0
    w.settle()
    w.stop()

    replay_db = tmp_path / "replay.duckdb"
    cli(["replay", str(events), "--audit-db", str(replay_db), "--quiet"])
    assert alerted_clusters(w.settings.audit_db) == alerted_clusters(replay_db)
    assert_nothing_doubled(w.settings.audit_db)


def test_a_checkpoint_the_key_did_not_sign_is_refused_as_forged(worker, tmp_path):
    """With --checkpoint-key-file, whoever can write the checkpoint volume cannot plant state: a
    checkpoint signed with another key, or none, is refused as forged, and the worker rebuilds from the
    topic to replay's alerts."""
    events = tmp_path / "events.jsonl"
    simulate(events)
    keys = tmp_path / "a.key", tmp_path / "b.key"
    keys[0].write_text("a" * 32), keys[1].write_text("b" * 32)
    w = worker(checkpoint_seconds=2.0, checkpoint_key_file=str(keys[0]), checkpoint_store="disk")
    directory = Path(w.settings.checkpoint_path)
    w.start()
    w.produce_file(events)
    w.wait_consumed()
    w.settle()
    w.stop()  # graceful: a last checkpoint, signed with key a
    assert exists(directory, "latest.ckpt")
    w.start().wait_owner()
    assert w.metric('fraudgraph_restore{outcome="restored"}') == 1 and w.metric("fraudgraph_recovered_records") == 0
    w.stop()

    w.settings = replace(w.settings, checkpoint_key_file=str(keys[1]))
    w.start().wait_owner()  # the same files, another key: both refused, a full rebuild
    assert w.metric('fraudgraph_restore{outcome="forged"}') == 1, w.log()
    assert "signature does not match" in w.log()
    assert w.metric("fraudgraph_recovered_records") == w.produced
    w.settle()
    w.stop()
    replay_db = tmp_path / "replay.duckdb"
    cli(["replay", str(events), "--audit-db", str(replay_db), "--quiet"])
    assert alerted_clusters(w.settings.audit_db) == alerted_clusters(replay_db)
