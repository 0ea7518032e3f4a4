"""Kafka intake: how fast one and two workers take the input topic, against a bare librdkafka consumer
on the same topic, in one run.

    .venv/bin/python -m tests.benchmarks.intake [--events 1500000] [--partitions 4] [--out RESULTS.md]

A real broker (started here). The first ``--events`` events of the simulator's 3-day stream (the
speed benchmark's) are produced to a ``--partitions``-partition topic, keyed by account, before anyone
reads it. Then, each on the full topic:

1. **bare librdkafka consumer** (confluent-kafka, batch ``consume``, nothing done with the records): a
   child process; events/s from its first to its last record, and its CPU seconds (all threads);
2. **one worker** (``fraudgraph worker``, checkpoints off), started on an empty topic; once it holds
   its partitions it is paused (SIGSTOP) while a librdkafka producer fills the topic, then resumed,
   so that it reads a full topic with nothing else running, as the bare consumer does: events/s from the first to the last decoded event (its
   ``fraudgraph_events_in_total{stage="decode"}``, read every 0.1 s), and its CPU seconds over the
   same span (``/proc/<pid>/stat``);
3. **two workers** in one group, each holding two partitions before the events are sent: the same
   over both. (Started on a full topic, the first worker would read partitions the group then moves
   to the second, which re-reads them to rebuild their state: the cost of a takeover, not of intake.)

For each: events/s, CPU seconds per 100k events, the ratio to the bare consumer; and whether the
accounts the worker alerted on (``alert_members``, after stage B drained and the input went idle)
are exactly ``replay``'s on the same events.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from streams.dev.broker import DevKafka
from streams.dev.localrun import wait_for
from tests.benchmarks.restart import machine
from tests.benchmarks.speed import stream
from tests.integration.conftest import WorkerHandle

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def produce(bootstrap: str, topic: str, lines: list[bytes], keys: list[bytes]) -> None:
    """With librdkafka, in the background of the reading under test: hundreds of thousands per second."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1 << 20,
                         "queue.buffering.max.messages": 2_000_000, "queue.buffering.max.kbytes": 1 << 21})
    for key, value in zip(keys, lines, strict=True):
        producer.produce(topic, value, key)
    producer.flush(120)


def bare(bootstrap: str, topic: str, n: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-m", "tests.benchmarks.intake", "--bare", bootstrap, topic, str(n)],
                         capture_output=True, text=True, check=True, timeout=1800)
    return json.loads(out.stdout)


def child_bare(bootstrap: str, topic: str, n: int) -> None:
    import resource

    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bare-{time.time_ns()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    seen, first, last, cpu0 = 0, 0.0, 0.0, 0.0
    while seen < n:
        messages = consumer.consume(10_000, 1.0)
        got = sum(1 for m in messages if m.error() is None)
        if got and not first:
            first = time.perf_counter()
            usage = resource.getrusage(resource.RUSAGE_SELF)
            cpu0 = usage.ru_utime + usage.ru_stime
        seen += got
        last = time.perf_counter() if got else last
    usage = resource.getrusage(resource.RUSAGE_SELF)
    consumer.close()
    print(json.dumps({"events": seen, "seconds": last - first, "cpu": usage.ru_utime + usage.ru_stime - cpu0}))


def workers(broker: DevKafka, lines: list[bytes], keys: list[bytes], partitions: int, n_workers: int,
            tmp: Path) -> dict[str, object]:
    first = WorkerHandle(broker, tmp, partitions, checkpoint_seconds=0.0)
    group = [first] + [first.twin(f"w{i}") for i in range(1, n_workers)]
    try:
        for w in group:
            w.launch()
        wait_for(lambda: all(w.metric("fraudgraph_recovering") == 0 and (w.metric("fraudgraph_assigned_partitions") or 0) > 0
                             for w in group) and
                 sum(w.metric("fraudgraph_assigned_partitions") or 0 for w in group) == partitions, 300, "workers ready")
        # Paused while the topic fills (a few seconds, inside the groups' 10 s session), so that they read a
        # full topic with nothing else running, as the bare consumer does.
        for w in group:
            os.killpg(w.proc.pid, signal.SIGSTOP)
        try:
            filled = time.perf_counter()
            produce(broker.bootstrap, first.settings.events_topic, lines, keys)
            filled = time.perf_counter() - filled
        finally:
            for w in group:
                os.killpg(w.proc.pid, signal.SIGCONT)
        decoded = 'fraudgraph_events_in_total{stage="decode"}'
        t0 = c0 = None
        while True:  # every 0.1 s: the first and the last decoded event, and the CPU at each
            counts = [w.metric(decoded) or 0 for w in group]
            now = time.perf_counter()
            if t0 is None and sum(counts):
                t0, c0 = now, sum(cpu_seconds(w.proc.pid) for w in group)
            if sum(counts) >= len(lines):
                t1, c1 = now, sum(cpu_seconds(w.proc.pid) for w in group)
                break
            for w in group:
                if w.proc.poll() is not None:
                    raise RuntimeError(f"a worker exited with {w.proc.returncode}: {w.log()[-2000:]}")
            time.sleep(0.1)

        def settled() -> bool:
            owners = [w for w in group if w.metric("fraudgraph_global_stage_owner") == 1]
            return (len(owners) == 1 and owners[0].metric("fraudgraph_changes_lag_messages") == 0
                    and all((w.metric("fraudgraph_consumer_lag_messages") or 0) == 0 for w in group))

        wait_for(settled, 1800, "stage B drained", interval=1.0)
        time.sleep(3 * first.settings.idle_flush_seconds + 5)  # idle input: held events released, ticks settled
        owner = next(w for w in group if w.metric("fraudgraph_global_stage_owner") == 1)
        owner.stop()
        con = duckdb.connect(owner.settings.audit_db, read_only=True)
        flagged = {row[0] for row in con.execute("SELECT DISTINCT account_id FROM alert_members").fetchall()}
        con.close()
        seconds = t1 - t0
        if filled > 8:
            print(f"warning: filling the topic took {filled:.1f}s with the workers paused (session timeout 10 s)")
        return {"workers": n_workers, "events": len(lines), "seconds": seconds, "cpu": c1 - c0, "flagged": flagged}
    finally:
        for w in group:
            w.stop()


def replay_flagged(lines: list[bytes], tmp: Path) -> set[str]:
    events = tmp / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    db = tmp / "replay.duckdb"
    subprocess.run([sys.executable, "-m", "streams.cli", "replay", str(events), "--audit-db", str(db), "--quiet"],
                   check=True)
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {row[0] for row in con.execute("SELECT DISTINCT account_id FROM alert_members").fetchall()}
    finally:
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_500_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--benign", type=int, default=100_000)
    parser.add_argument("--workers", default="1,2", help="worker counts to run (default 1,2)")
    parser.add_argument("--out", type=Path, default=None, help="append the table to this markdown file")
    parser.add_argument("--bare", nargs=3, metavar=("BOOTSTRAP", "TOPIC", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare:
        child_bare(args.bare[0], args.bare[1], int(args.bare[2]))
        return
    path, _total = stream(args.benign, 1.0, 3, 11)
    with gzip.open(path, "rb") as handle:
        lines = [line for line in handle.read().splitlines() if line][:args.events]
    keys = [json.loads(line)["account_id"].encode() for line in lines]
    rows = []
    with tempfile.TemporaryDirectory() as tmp, DevKafka() as broker:
        topic = f"bare-{time.time_ns()}"
        broker.create_topics([topic], partitions=args.partitions)
        produce(broker.bootstrap, topic, lines, keys)
        base = bare(broker.bootstrap, topic, len(lines))
        rows.append(("bare librdkafka consumer", base["events"] / base["seconds"], base["cpu"] / base["events"] * 1e5, None))
        truth = replay_flagged(lines, Path(tmp))
        for n in [int(x) for x in args.workers.split(",")]:
            work = Path(tmp) / f"w{n}"
            work.mkdir()
            result = workers(broker, lines, keys, args.partitions, n, work)
            same = result["flagged"] == truth
            rows.append((f"{n} worker{'s' if n > 1 else ''}", len(lines) / result["seconds"],
                         result["cpu"] / len(lines) * 1e5, same))
    bare_rate = rows[0][1]
    table = [f"Kafka intake: {len(lines):,} events of the 3-day simulated stream in a {args.partitions}-partition topic, "
             f"read from the start ({machine()}).", "",
             "| reader | events/s (first to last decoded) | CPU s per 100k events | ratio to bare | flags replay's accounts |",
             "|---|---|---|---|---|"]
    for name, rate, cpu, same in rows:
        flag = "—" if same is None else ("yes" if same else "**no**")
        table.append(f"| {name} | {rate:,.0f} | {cpu:.2f} | {rate / bare_rate:.2f} | {flag} |")
    text = "\n".join(table) + "\n"
    print(text)
    if args.out:
        with open(args.out, "a") as handle:
            handle.write("\n" + text)


if __name__ == "__main__":
    main()
