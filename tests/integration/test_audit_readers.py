"""Investigators query while the worker writes: a second process opens the audit store read-only
every second for a minute of writing. No errors beyond the documented retry, no lost rows, and the
data it sees is at most 10 s old (the measured freshness is printed)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from streams.sinks.audit import connect_read_only
from streams.cli import main as cli
from tests.conftest import T0
from tests.integration.conftest import contract_json
from tests.unit.scenarios import farm

READER = r"""
import json, sys, time, duckdb
path, seconds = sys.argv[1], float(sys.argv[2])
polls, retries, errors, ages, counts = 0, 0, [], [], []
end = time.time() + seconds
while time.time() < end:
    for attempt in range(5):  # the documented retry
        try:
            con = duckdb.connect(path, read_only=True)
            count = con.execute("SELECT count(*) FROM cluster_lineage").fetchone()[0]
            age = con.execute("SELECT epoch(now() - last_flush) FROM freshness").fetchone()[0]
            con.close()
            polls += 1
            counts.append(count)
            if age is not None:
                ages.append(age)
            break
        except duckdb.Error as exc:
            retries += 1
            if attempt == 4:
                errors.append(str(exc)[:200])
            time.sleep(0.2)
    time.sleep(1.0)
print(json.dumps({"polls": polls, "retries": retries, "errors": errors, "ages": ages, "counts": counts}))
"""


def test_a_reader_queries_every_second_while_the_worker_writes_for_a_minute(worker, tmp_path, capsys):
    w = worker(lateness_seconds=5.0, tick_seconds=10.0).start()
    # Sixty waves of new rings, one a second, each ten minutes of event time after the last.
    waves = [farm(f"w{k:02d}x", 24, devices=4, t=T0 + 600 * k, dc_ip=f"45.1.{k}.1") for k in range(60)]
    reader = subprocess.Popen([sys.executable, "-c", READER, w.settings.audit_db, "62"], stdout=subprocess.PIPE)
    started = time.monotonic()
    for k, wave in enumerate(waves):
        w.produce([contract_json(e) for e in wave])
        time.sleep(max(0.0, started + k + 1 - time.monotonic()))
    out, _ = reader.communicate(timeout=120)
    result = json.loads(out)
    w.wait_consumed()
    w.settle()

    with capsys.disabled():  # the measured freshness belongs in the CI log
        print(f"\n[concurrent reader] {result['polls']} polls in 60 s, {result['retries']} retries, data age "
              f"max {max(result['ages']):.2f} s, median {sorted(result['ages'])[len(result['ages']) // 2]:.2f} s")
    assert not result["errors"]
    assert result["polls"] >= 50
    assert max(result["ages"]) <= 10.0
    assert result["counts"] == sorted(result["counts"]), "a reader never sees rows disappear"
    assert result["counts"][-1] > result["counts"][0], "the reader saw the store grow while it was written"

    # Nothing lost: the final store holds exactly what a replay of the same events produces.
    events = tmp_path / "waves.jsonl"
    events.write_bytes(b"\n".join(contract_json(e) for wave in waves for e in wave) + b"\n")
    cli(["replay", str(events), "--audit-db", str(tmp_path / "replay.duckdb"), "--lateness-seconds", "5",
         "--tick-seconds", "10", "--quiet"])
    counts = []
    for db in (w.settings.audit_db, tmp_path / "replay.duckdb"):
        con = connect_read_only(db)
        counts.append(con.execute("SELECT count(*), count(DISTINCT cluster_id) FROM cluster_lineage").fetchone()
                      + con.execute("SELECT count(*) FROM alerts").fetchone())
        con.close()
    assert counts[0] == counts[1] and counts[0][2] == 60
