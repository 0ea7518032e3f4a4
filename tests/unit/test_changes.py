"""The changes topic's records: a step's batches round-trip through parts, a batch cut by a crash
and sent again whole comes out once, and a record fraudgraph did not write is refused clearly."""

from __future__ import annotations

import random

import pytest

from graph import DetectionConfig, DetectionEngine
from graph.events import AccountEvent, EventColumns
from streams.runtime import changes
from streams.runtime.changes import ChangeError, ChangeReader, batch_records, idle_record, verdict_record


def batches(n_accounts: int) -> list:
    engine = DetectionEngine(DetectionConfig(tick_seconds=60.0), clock=lambda: 0.0, split=True)
    rng = random.Random(3)
    events = [AccountEvent(f"e{i}", "login", f"acct-{i:06d}-{'x' * 40}", 1_767_571_200.0 + i * 0.5,
                           device_id=f"dev{rng.randrange(n_accounts // 3)}", ip=f"10.0.{i % 250}.{i // 250 % 250}")
              for i in range(n_accounts)]
    engine.windows[0].feed(EventColumns.from_events(events))
    engine.flush_partition(0)
    return engine.take_batches(0)


def test_a_large_step_crosses_in_parts_and_comes_out_whole(monkeypatch):
    monkeypatch.setattr(changes, "PART_BYTES", 4096)
    sent = batches(3000)
    records = batch_records(2, sent)
    assert len(records) > 3, "split into parts"
    reader = ChangeReader()
    out = [reader.read(r.value, r.headers) for r in records]
    assert all(o is None for o in out[:-1])
    change = out[-1]
    assert change.kind == "batch" and change.partition == 2
    assert [b.to_bytes() for b in change.batches] == [b.to_bytes() for b in sent]
    assert reader.pending == 0


def test_a_batch_cut_by_a_crash_and_sent_again_comes_out_once(monkeypatch):
    monkeypatch.setattr(changes, "PART_BYTES", 4096)
    records = batch_records(0, batches(3000))
    reader = ChangeReader()
    cut = [reader.read(r.value, r.headers) for r in records[:2]]  # the old owner died after two parts
    assert cut == [None, None] and reader.pending == 1
    again = [reader.read(r.value, r.headers) for r in records]
    assert [o for o in again if o is not None][0].kind == "batch" and sum(o is not None for o in again) == 1
    orphan = ChangeReader()
    assert orphan.read(records[1].value, records[1].headers) is None and orphan.pending == 0, \
        "a part without its start is dropped (its batch comes again from part 0)"


def test_idle_marks_and_verdicts_and_foreign_records():
    reader = ChangeReader()
    idle = idle_record(3)
    assert reader.read(idle.value, idle.headers).partition == 3
    verdict = verdict_record(b"C0000001", b'{"cluster_id": "C0000001"}')
    assert reader.read(verdict.value, verdict.headers).value == b'{"cluster_id": "C0000001"}'
    with pytest.raises(ChangeError, match="unknown change kind"):
        reader.read(b"x", [("fraudgraph.change", b"mystery"), ("fraudgraph.partition", b"0")])
    with pytest.raises(ChangeError, match="malformed change record headers"):
        reader.read(b"x", [])
    assert batch_records(0, []) == []
