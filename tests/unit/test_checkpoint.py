"""A checkpoint restores the engine exactly: cut a stream at random points, dump, load (in this
process or in another one with another hash seed), continue, and the alerts, versions, lineage,
clusters and counters are those of the run that was never cut. A damaged, foreign or incompatible
checkpoint is refused with its kind, never restored into wrong state."""

from __future__ import annotations

import dataclasses
import os
import pickle
import random
import subprocess
import sys
import zlib
from pathlib import Path

import orjson
import pytest

from graph import DetectionConfig, DetectionEngine
from graph import snapshot as checkpoint
from graph.snapshot import CheckpointError
from streams.dev.simulate import SimConfig, default_rings, generate


@pytest.fixture(scope="module")
def stream() -> list[bytes]:
    events, _labels = generate(SimConfig(seed=5, benign_accounts=1200, days=2, rings=default_rings(0.05, None)))
    return [orjson.dumps(e) for e in events]


def config() -> DetectionConfig:
    return DetectionConfig(window_seconds=6 * 3600.0, tick_seconds=60.0, allowed_lateness_seconds=300.0)


def fallback(_i: int):
    raise AssertionError("the simulator's events take the kernel's fast path")


def chunks(stream: list[bytes], partitions: int, seed: int) -> list[tuple[int, list[bytes]]]:
    """The stream as fetches of one partition each, in a random interleaving."""
    queues: list[list[bytes]] = [[] for _ in range(partitions)]
    for raw in stream:
        queues[zlib.crc32(orjson.loads(raw)["account_id"].encode()) % partitions].append(raw)
    rng, positions, out = random.Random(seed), [0] * partitions, []
    while any(positions[p] < len(queues[p]) for p in range(partitions)):
        p = rng.choice([q for q in range(partitions) if positions[q] < len(queues[q])])
        n = rng.randint(1, 2500)
        out.append((p, queues[p][positions[p]:positions[p] + n]))
        positions[p] += n
    return out


def summary(out) -> list[tuple]:
    rows = [("alert", a.alert_id, a.version, a.action, a.severity, a.member_count, a.members_added, a.members_removed,
             a.score, a.detected_at, a.alerted_at, a.requests) for a in out.alerts]
    rows += [("lineage", e.cluster_id, e.kind, e.at, e.size, e.other) for e in out.lineage]
    rows += [("cluster", c.cluster_id, c.members, c.scored_at, c.verdict) for c in out.clusters]
    rows += [("gone", g) for g in out.gone]
    return rows


def feed(engine: DetectionEngine, fetches, verdict_at: int | None = None) -> list[tuple]:
    rows = []
    for i, (p, values) in enumerate(fetches):
        rows += summary(engine.process_json(values, list(range(len(values))), fallback, partition=p))
        if verdict_at is not None and i == verdict_at and engine.clusters:
            first = sorted(engine.clusters)[0]
            rows += summary(engine.apply_verdict(first, "confirmed"))
    return rows


def finish(engine: DetectionEngine) -> list[tuple]:
    rows = summary(engine.flush())
    return rows + [("counters", sorted(engine.counters.items())), ("partition", engine.partition())]


@pytest.mark.parametrize("partitions", [1, 3])
def test_restored_engine_continues_exactly(stream, partitions):
    fetches = chunks(stream, partitions, seed=partitions)
    verdict_at = len(fetches) // 3
    whole = DetectionEngine(config(), clock=lambda: 0.0, partitions=partitions)
    expected = feed(whole, fetches, verdict_at) + finish(whole)
    assert sum(1 for r in expected if r[0] == "alert") >= 5 and any(r[0] == "lineage" and r[2] == "merged"
                                                                     for r in expected)

    rng = random.Random(partitions)
    cuts = sorted(rng.sample(range(1, len(fetches)), 4))
    engine = DetectionEngine(config(), clock=lambda: 0.0, partitions=partitions)
    rows, start = [], 0
    for cut in cuts:
        rows += feed(engine, fetches[start:cut], verdict_at - start if start <= verdict_at < cut else None)
        data = checkpoint.dump(engine, {"cut": cut})
        engine, facts = checkpoint.load(data, config(), clock=lambda: 0.0, partitions=partitions)
        assert facts == {"cut": cut}
        assert checkpoint.read_header(checkpoint.dump(engine, {"cut": cut})) == checkpoint.read_header(data)
        start = cut
    rows += feed(engine, fetches[start:], verdict_at - start if start <= verdict_at else None) + finish(engine)
    assert rows == expected


def test_restore_in_another_process_gives_the_same_answer(stream, tmp_path):
    """String hashing differs per process: the restored indexes must not depend on it."""
    fetches = chunks(stream, 1, seed=9)
    cut = len(fetches) // 2
    engine = DetectionEngine(config(), clock=lambda: 0.0)
    feed(engine, fetches[:cut])
    (tmp_path / "engine.ckpt").write_bytes(checkpoint.dump(engine))
    (tmp_path / "rest.pickle").write_bytes(pickle.dumps(fetches[cut:]))
    expected = feed(engine, fetches[cut:]) + finish(engine)
    script = f"""
import pickle, sys
sys.path.insert(0, {str(Path(__file__).parents[2])!r})
from graph import snapshot as checkpoint
from tests.unit.test_checkpoint import config, feed, finish
engine, _ = checkpoint.load(open({str(tmp_path / 'engine.ckpt')!r}, 'rb').read(), config(), clock=lambda: 0.0)
rows = feed(engine, pickle.load(open({str(tmp_path / 'rest.pickle')!r}, 'rb'))) + finish(engine)
sys.stdout.buffer.write(pickle.dumps(rows))
"""
    for seed in ("1", "2"):
        got = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed}).stdout
        assert pickle.loads(got) == expected


def test_damaged_and_incompatible_checkpoints_are_refused(stream):
    engine = DetectionEngine(config(), clock=lambda: 0.0, partitions=2)
    feed(engine, chunks(stream[:20000], 2, seed=1))
    data = checkpoint.dump(engine)

    def kind(blob: bytes, cfg: DetectionConfig | None = None, partitions: int | None = 2) -> str:
        with pytest.raises(CheckpointError) as caught:
            checkpoint.load(blob, cfg or config(), partitions=partitions)
        return caught.value.kind

    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x40
    assert kind(bytes(flipped)) == "corrupt"
    assert kind(data[: len(data) - 1000]) == "corrupt"
    assert kind(b"not a checkpoint") == "corrupt"
    assert kind(data, dataclasses.replace(config(), device_max_degree=7)) == "incompatible"
    assert kind(data, partitions=4) == "incompatible"
    restored, _ = checkpoint.load(data, config(), partitions=2)
    assert restored.partition() == engine.partition()


def _with_policy(data: bytes, policy: bytes) -> bytes:
    """The same checkpoint with its policy section replaced, and a checksum that holds."""
    header, offset = checkpoint._header(data)
    sizes = header["sections"]
    start = offset + sum(sizes[:-1])
    header["sections"] = [*sizes[:-1], len(policy)]
    head = orjson.dumps(header, option=orjson.OPT_SORT_KEYS)
    body = checkpoint.MAGIC + checkpoint.struct.pack("<I", len(head)) + head + data[offset:start] + policy
    return body + checkpoint.hashlib.sha256(body).digest()


def test_no_checkpoint_can_run_code_or_build_foreign_objects(stream):
    """The policy section is typed MessagePack: a pickle (a function to call) or a record of another
    shape in its place, even with a checksum that holds, is refused as corrupt — nothing is executed."""
    engine = DetectionEngine(config(), clock=lambda: 0.0, partitions=2)
    feed(engine, chunks(stream[:5000], 2, seed=3))
    data = checkpoint.dump(engine)
    called = []
    evil = pickle.dumps(type("Evil", (), {"__reduce__": lambda self: (called.append, ("ran",))})())
    for policy in (evil, pickle.dumps(os.system), orjson.dumps({"windows": "x"}), b"\x93\x01\x02\x03"):
        with pytest.raises(CheckpointError) as caught:
            checkpoint.load(_with_policy(data, policy), config(), partitions=2)
        assert caught.value.kind == "corrupt"
    assert called == []
    for module in (checkpoint, __import__("streams.worker.checkpoints", fromlist=["x"]),
                   __import__("streams.worker.checkpoint_topic", fromlist=["x"])):
        text = Path(module.__file__).read_text()
        assert "import pickle" not in text and "pickle.load" not in text and "Unpickler" not in text


def test_a_signed_checkpoint_refuses_what_the_key_did_not_sign(stream):
    engine = DetectionEngine(config(), clock=lambda: 0.0, partitions=2)
    feed(engine, chunks(stream[:5000], 2, seed=4))
    key, other = b"k" * 32, b"o" * 32
    signed = checkpoint.dump(engine, {"offsets": []}, key=key)
    restored, facts = checkpoint.load(signed, config(), partitions=2, key=key)
    assert restored.partition() == engine.partition() and facts == {"offsets": []}

    def kind(blob: bytes, k: bytes | None) -> str:
        with pytest.raises(CheckpointError) as caught:
            checkpoint.load(blob, config(), partitions=2, key=k)
        return caught.value.kind

    assert kind(signed, other) == "forged"  # signed with another key
    assert kind(checkpoint.dump(engine), key) == "forged"  # unsigned, where a key is required
    tampered = bytearray(signed)
    tampered[len(signed) // 2] ^= 0x01
    assert kind(bytes(tampered), key) == "forged"  # changed after signing
    assert kind(signed, None) == "corrupt"  # signed, read without the key: its checksum does not hold


def test_the_store_keeps_the_previous_checkpoint_and_clears_torn_writes(tmp_path):
    from streams.worker.checkpoints import DirectoryStore

    store = DirectoryStore(tmp_path / "ckpt")
    assert store.read(["global"]) == {"global": []}
    store.save("global", b"one")
    (store.directory / "global" / ".latest.ckpt.999.tmp").write_bytes(b"torn")  # a crash mid-write
    store.save("global", b"two")
    store.save("window-1", b"w")
    assert [c.data for c in store.read(["global"])["global"]] == [b"two", b"one"]
    assert [c.data for c in store.read(["window-1"])["window-1"]] == [b"w"]
    assert not list(store.directory.rglob("*.tmp"))


def test_adoption_takes_the_newest_checkpoint_that_checks_out(stream):
    """Candidates are tried by the offset they cover, not by where they were found: a stale worker's late
    write does not hide a newer one; a refused one is skipped with its kind; none newer than the state held
    is adopted."""
    from streams.worker.checkpoints import Candidate, choose

    engine = DetectionEngine(config(), clock=lambda: 0.0, partitions=2, split=True)
    fetches = chunks(stream, 2, seed=6)
    split_feed(engine, fetches[:5])
    older = checkpoint.dump_unit(engine, "global", {"topic": "changes", "offset": 50})
    split_feed(engine, fetches[5:10])
    newer = checkpoint.dump_unit(engine, "global", {"topic": "changes", "offset": 90})
    c = config()
    found = [Candidate("a", older), Candidate("b", newer)]
    adopted, outcome = choose("global", found, c, 2, "changes", 100, 0, None)
    assert outcome == "restored" and adopted is not None and (adopted.label, adopted.offset) == ("b", 90)
    adopted, outcome = choose("global", [Candidate("x", newer[:-1] + b"?"), Candidate("a", older)], c, 2, "changes",
                              100, 0, None)
    assert outcome == "restored" and adopted is not None and adopted.label == "a"
    assert choose("global", found, c, 2, "changes", 100, 95, None) == (None, "held")
    assert choose("global", found, c, 2, "changes", 60, 0, None)[0].label == "a"  # 90 is beyond the topic's end
    assert choose("global", [Candidate("x", None, "unreadable")], c, 2, "changes", 100, 0, None) == (None, "corrupt")
    assert choose("global", found, c, 2, "other-topic", 100, 0, None) == (None, "incompatible")
    assert choose("global", found, c, 2, "changes", 100, 0, b"k" * 32) == (None, "forged")


def split_feed(engine: DetectionEngine, fetches) -> list[tuple]:
    """The worker's two stages in one process: each partition's batches cross as bytes, as on the topic."""
    from graph import _kernel

    rows = []
    for p, values in fetches:
        engine.feed_json(values, list(range(len(values))), fallback, partition=p)
        for batch in engine.take_batches(p):
            engine.receive(p, _kernel.Batch.from_bytes(batch.to_bytes()))
        rows += summary(engine.release())
    return rows


def split_finish(engine: DetectionEngine) -> list[tuple]:
    from graph import _kernel

    for p in range(engine.partitions):
        engine.flush_partition(p)
        for batch in engine.take_batches(p):
            engine.receive(p, _kernel.Batch.from_bytes(batch.to_bytes()))
        engine.receive_idle(p)
    return summary(engine.release()) + [("partition", engine.partition())]


def adopted(engine: DetectionEngine, key: bytes | None = None) -> DetectionEngine:
    """A new engine (another worker) that adopts each unit of ``engine`` from its own checkpoint."""
    n = engine.partitions
    fresh = DetectionEngine(config(), clock=lambda: 0.0, partitions=n, split=True)
    for p in range(n):
        data = checkpoint.dump_unit(engine, checkpoint.window_unit(p), {"offset": p}, key=key)
        window, facts = checkpoint.load_window(data, config(), p, n, key=key)
        assert facts == {"offset": p}
        fresh.adopt_window(p, window)
    state, _ = checkpoint.load_global(checkpoint.dump_unit(engine, checkpoint.GLOBAL, key=key), config(), n, key=key)
    fresh.adopt_global(state)
    return fresh


def test_each_stage_adopted_by_another_engine_continues_exactly(stream):
    """Stage A's windows and stage B, each checkpointed on its own and adopted by a new engine at random
    cuts (a takeover), give the alerts, versions, lineage and clusters of the run never cut."""
    fetches = chunks(stream, 3, seed=11)
    whole = DetectionEngine(config(), clock=lambda: 0.0, partitions=3, split=True)
    expected = split_feed(whole, fetches) + split_finish(whole)
    assert sum(1 for r in expected if r[0] == "alert") >= 5

    engine = DetectionEngine(config(), clock=lambda: 0.0, partitions=3, split=True)
    rows, start = [], 0
    for cut in sorted(random.Random(3).sample(range(1, len(fetches)), 4)):
        rows += split_feed(engine, fetches[start:cut])
        engine = adopted(engine, key=b"k" * 32 if cut % 2 else None)
        start = cut
    rows += split_feed(engine, fetches[start:]) + split_finish(engine)
    assert rows == expected


def test_a_stage_checkpoint_is_adopted_only_as_itself(stream):
    engine = DetectionEngine(config(), clock=lambda: 0.0, partitions=3, split=True)
    split_feed(engine, chunks(stream, 3, seed=2)[:20])
    window2 = checkpoint.dump_unit(engine, checkpoint.window_unit(2))
    stage_b = checkpoint.dump_unit(engine, checkpoint.GLOBAL)

    def kind(call):
        with pytest.raises(CheckpointError) as info:
            call()
        return info.value.kind

    assert kind(lambda: checkpoint.load_window(window2, config(), 1, 3)) == "incompatible"  # another partition's
    assert kind(lambda: checkpoint.load_global(window2, config(), 3)) == "incompatible"
    assert kind(lambda: checkpoint.load_window(stage_b, config(), 0, 3)) == "incompatible"
    assert kind(lambda: checkpoint.load_global(stage_b, config(), 4)) == "incompatible"  # another partition count
    assert kind(lambda: checkpoint.load_global(stage_b[:-40] + stage_b[-39:], config(), 3)) == "corrupt"
    assert kind(lambda: checkpoint.load_global(stage_b, config(), 3, key=b"k" * 32)) == "forged"
    assert kind(lambda: checkpoint.load(stage_b, config(), partitions=3)) == "incompatible"  # not a whole engine
    with pytest.raises(ValueError):
        checkpoint.dump_unit(engine, "window-3")


def test_the_checkpoint_topic_layout_reassembles_only_whole_checkpoints():
    """The topic's records in offset order: chunks, then the manifest; a tombstone removes what its key
    held; a manifest whose chunks are missing or do not match its size and checksum is a refused candidate
    (never bytes handed on), and the previous manifest is still there to fall back on."""
    import hashlib
    import json as jsonlib

    from streams.worker.checkpoint_topic import _assemble, _take

    def manifest(generation: str, data: bytes, chunks: int, offset: int) -> bytes:
        return jsonlib.dumps({"unit": "global", "generation": generation, "chunks": chunks, "size": len(data),
                              "sha256": hashlib.sha256(data).hexdigest(), "offset": offset}).encode()

    old, new = b"a" * 10, b"b" * 7 + b"c" * 5
    records = [("global@g1#0", old), ("global", manifest("g1", old, 1, 10)),
               ("global@g2#0", new[:7]), ("global@g2#1", new[7:]), ("global~previous", manifest("g1", old, 1, 10)),
               ("global", manifest("g2", new, 2, 20)), ("window-0@g9#0", b"other unit"), ("global@g0#0", None)]
    manifests: dict = {"global": {}}
    chunks: dict = {"global": {}}
    for key, value in records:
        _take(key, value, {"global"}, manifests, chunks)
    assert set(chunks["global"]) == {"global@g1#0", "global@g2#0", "global@g2#1"}
    latest, m = _assemble("t", "global", "latest", manifests["global"][""], chunks["global"])
    assert latest.data == new and m["offset"] == 20
    previous, _ = _assemble("t", "global", "previous", manifests["global"]["~previous"], chunks["global"])
    assert previous.data == old

    _take("global@g2#1", None, {"global"}, manifests, chunks)  # a chunk gone
    missing, _ = _assemble("t", "global", "latest", manifests["global"][""], chunks["global"])
    assert missing.data is None and "missing" in missing.why
    _take("global@g2#1", b"X" * 5, {"global"}, manifests, chunks)  # a chunk changed
    changed, _ = _assemble("t", "global", "latest", manifests["global"][""], chunks["global"])
    assert changed.data is None and "checksum" in changed.why
    garbled, m = _assemble("t", "global", "latest", b"{not json", chunks["global"])
    assert garbled.data is None and m is None
