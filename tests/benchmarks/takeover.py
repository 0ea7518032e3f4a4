"""Takeover against the length of the history: the stage-B owner of two workers killed with SIGKILL, a
new ring produced after the kill, and the time until the survivor — which never held the dead worker's
state and has an empty disk of its own — alerts it.

    .venv/bin/python -m tests.benchmarks.takeover [--benign 70000] [--lengths 150000,450000,1500000] [--out FILE]

A real broker (started here) and two real workers, 4 input partitions, a 1-day window (so the history is
many windows long), checkpoints every 30 s. Traffic: the first N events of the simulator's 12-day
stream (70k benign accounts and the planted operations, seed 23); the new ring is 150 accounts on 10
phones calling the API from one datacenter address, dated after the history. For each N:

1. both workers consume the history and write a checkpoint after it; the changes topic's retained
   records (end minus log start) and its bytes on the broker's disk are read;
2. the worker holding stage B is killed with SIGKILL and the ring produced at once;
3. **takeover** = kill to the first alert on the alerts topic holding the ring's accounts (the record's
   timestamp), which includes the group's session timeout (10 s).

Both stores are run: ``kafka`` (the default: checkpoints in the compacted topic, adopted by the
survivor) and ``disk`` (each worker's own volume: the survivor has none of the dead worker's and
rebuilds from the topics; the baseline). Prints markdown; --out appends it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import tempfile
import threading
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import orjson
from kafka import KafkaConsumer, TopicPartition

from streams.dev.broker import DevKafka
from streams.dev.localrun import wait_for
from tests.benchmarks.restart import emit, history, machine
from tests.conftest import ev
from tests.integration.conftest import WorkerHandle, contract_json

RING = 150


def ring(after: float) -> list[bytes]:
    """150 accounts on 10 phones, each calling the API from one datacenter address, dated after ``after``."""
    out = []
    for i in range(RING):
        account, t = f"late-ring-{i:03d}", after + 60 + i
        out.append(ev(account, t, device=f"late-phone-{i % 10}", ip=f"77.1.{i}.9", kind="signup"))
        out.append(ev(account, t + 0.5, device=f"late-phone-{(i + 1) % 10}", ip=f"77.2.{i}.9"))
        out.append(ev(account, t + 0.7, ip="45.77.0.9", kind="api_usage", asn="AS16509"))
    return [contract_json(e) for e in out]


def topic_bytes(broker: DevKafka, topic: str) -> int:
    assert broker.workdir is not None
    return sum(p.stat().st_size for p in (broker.workdir / "data" / f"{topic}-0").glob("*.log"))


def retained(bootstrap: str, topic: str) -> tuple[int, int]:
    """(log start offset, end offset) of ``topic``[0]."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        tp = TopicPartition(topic, 0)
        return consumer.beginning_offsets([tp])[tp], consumer.end_offsets([tp])[tp]
    finally:
        consumer.close()


class AlertWatch:
    """The alerts topic from its end; ``at`` is the timestamp of the first alert holding a ring account."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.at: float | None = None
        self.stop = threading.Event()
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        tps = [TopicPartition(topic, p) for p in sorted(self.consumer.partitions_for_topic(topic) or {0})]
        self.consumer.assign(tps)
        self.consumer.seek_to_end()
        for tp in tps:
            self.consumer.position(tp)
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set() and self.at is None:
            for messages in self.consumer.poll(timeout_ms=200).values():
                for m in messages:
                    alert = orjson.loads(m.value)
                    if any(a.startswith("late-ring-") for a in alert.get("members_added", [])):
                        self.at = m.timestamp / 1000.0
        self.consumer.close()


def one(broker: DevKafka, lines: list[bytes], keys: list[bytes], n: int, store: str, tmp: Path) -> dict[str, float]:
    first = WorkerHandle(broker, tmp, 4, checkpoint_seconds=30.0, window_days=1.0, checkpoint_store=store,
                         instance_id="one")
    second = first.twin("second", shared_audit=True)
    second.settings = replace(second.settings, instance_id="two")
    workers = [first, second]
    try:
        first.launch(), second.launch()
        try:
            wait_for(lambda: all(w.metric("fraudgraph_recovering") == 0 and (w.metric("fraudgraph_assigned_partitions") or 0) == 2
                                 for w in workers), 300, "two workers with two partitions each")
        except (TimeoutError, RuntimeError):
            for w in workers:
                print(f"--- {w.settings.instance_id}: {w.metric('fraudgraph_assigned_partitions')} partitions, recovering "
                      f"{w.metric('fraudgraph_recovering')}\n{w.log()[-3000:]}", flush=True)
            raise
        first.produce(lines[:n], keys[:n])
        wait_for(lambda: sum(w.consumed() for w in workers) >= n, 3600, "the history consumed", interval=2)
        # ... and applied by stage B (the kill must find stage B caught up, or the survivor inherits its backlog)
        wait_for(lambda: sum(w.metric("fraudgraph_changes_lag_messages") or 0 for w in workers) == 0 and
                 sum(w.metric("fraudgraph_global_stage_owner") or 0 for w in workers) == 1, 3600,
                 "stage B caught up", interval=2)
        consumed = time.time()
        wait_for(lambda: all((w.metric("fraudgraph_last_checkpoint_timestamp_seconds") or 0) > consumed for w in workers),
                 300, "a checkpoint after the history", interval=1)
        time.sleep(4)  # the groups' commits
        changes = first.settings.changes_topic_name
        start, end = retained(broker.bootstrap, changes)
        disk = topic_bytes(broker, changes)
        victim = next(w for w in workers if w.metric("fraudgraph_global_stage_owner") == 1)
        survivor = second if victim is first else first
        last = max(json.loads(line)["ts"] for line in lines[max(0, n - 5000):n])
        after = datetime.fromisoformat(last.replace("Z", "+00:00")).timestamp()
        watch = AlertWatch(broker.bootstrap, first.settings.alerts_topic)
        killed = time.time()
        os.killpg(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait()
        victim.proc = None
        first.produce(ring(after))
        wait_for(lambda: watch.at is not None, 1800, "the new ring's alert", survivor.proc, interval=0.2)
        watch.stop.set()
        adopted = [float(x) for x in re.findall(r"adopted the checkpoint .* in ([\d.]+)s", survivor.log())]
        return {"events": n, "store": store, "takeover": (watch.at or 0) - killed, "retained": end - start,
                "changes_end": end, "changes_mib": disk / 2**20, "adopt": sum(adopted),
                "checkpoints_mib": topic_bytes(broker, first.settings.checkpoints_topic) / 2**20 if store == "kafka" else 0.0,
                "tail": (survivor.metric("fraudgraph_recovered_changes") or 0) + (survivor.metric("fraudgraph_recovered_records") or 0)}
    finally:
        for w in workers:
            w.stop()


def measure(benign: int, lengths: list[int], stores: list[str]) -> str:
    lines, keys, total = history(benign)
    rows = []
    with DevKafka() as broker, tempfile.TemporaryDirectory() as tmp:
        for i, n in enumerate(min(n, len(lines)) for n in lengths):
            for store in stores:
                work = Path(tmp) / f"n{i}-{store}"
                work.mkdir()
                rows.append(one(broker, lines, keys, n, store, work))
                print(f"takeover: {rows[-1]}", flush=True)
    out = [f"## Takeover vs history ({machine()})", "",
           f"Two workers, 4 partitions, 1-day window, checkpoints every 30 s; the first N events of the 12-day stream "
           f"({total:,} events). The stage-B owner is killed with SIGKILL and a 150-account ring produced; takeover = "
           "kill to the survivor's alert for the ring (session timeout of 10 s included). Changes topic as it stood "
           "at the kill: records retained (end − log start) of all it ever held, and its bytes on the broker's disk.",
           "", "| history events | checkpoints | takeover s | adopting s | records re-read by the survivor "
           "| changes topic: retained / written | changes topic on disk | checkpoints topic on disk |",
           "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['events']:,.0f} | {r['store']} | {r['takeover']:.1f} | {r['adopt']:.1f} | {r['tail']:,.0f} | "
                   f"{r['retained']:,.0f} / {r['changes_end']:,.0f} | {r['changes_mib']:.1f} MiB | "
                   f"{r['checkpoints_mib']:.1f} MiB |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benign", type=int, default=70000)
    parser.add_argument("--lengths", default="150000,450000,1500000")
    parser.add_argument("--stores", default="kafka,disk")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    emit(measure(args.benign, [int(x) for x in args.lengths.split(",")], args.stores.split(",")), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
