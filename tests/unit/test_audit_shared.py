"""One audit store written by several workers: each names its segments after itself, they start
together without tripping over each other, compaction folds everyone's segments and the views show
each row once."""

from __future__ import annotations

import subprocess
import sys

import duckdb

from streams.sinks.audit import AuditStore

START = """
import sys
from streams.sinks.audit import AuditStore
for _ in range(5):
    AuditStore(sys.argv[1], writer=sys.argv[2]).create()
"""


def test_workers_starting_together_on_one_store_both_start(tmp_path):
    db = tmp_path / "audit.duckdb"
    procs = [subprocess.Popen([sys.executable, "-c", START, str(db), name], stderr=subprocess.PIPE)
             for name in ("one", "two", "three")]
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()


def test_segments_carry_their_writer_and_compaction_folds_all_of_them(tmp_path):
    db = tmp_path / "audit.duckdb"
    stores = [AuditStore(db, clock=lambda: 1_800_000_000.0, writer=name) for name in ("pod-0", "pod-1")]
    stores[0].create()
    for store in stores:  # the same verdict from both (a takeover re-derives rows the other wrote) and one each
        store.add_verdict("v-shared", "C0000001", "confirmed", "ana", "", 1_800_000_000.0)
        store.add_verdict(f"v-{store.writer}", "C0000002", "benign", "bo", "", 1_800_000_000.0)
        store.flush()
    folder = db.with_name("audit.duckdb.parts") / "verdict_rows"
    names = sorted(p.name for p in folder.glob("*.parquet") if not p.name.startswith("000"))
    assert {n.split("-")[1] for n in names} == {"pod_0", "pod_1"}, names

    def verdicts() -> list[tuple]:
        con = duckdb.connect(str(db), read_only=True)
        try:
            return sorted(con.execute("SELECT verdict_id FROM verdicts").fetchall())
        finally:
            con.close()

    before = verdicts()
    assert before == [("v-pod_0",), ("v-pod_1",), ("v-shared",)]
    stores[1].compact()  # stage B's owner folds every writer's segments
    assert len([p for p in folder.glob("*.parquet") if not p.name.startswith("000")]) == 1
    assert verdicts() == before
