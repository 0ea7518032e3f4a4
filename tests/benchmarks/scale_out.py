"""Through Kafka with 1 and 2 workers, and restart against the topic's length, in one run:
throughput from the input topic to alerts, the wall-time latency from the event that makes a ring
alert-worthy to its alert on fraud-alerts, and ``tests/benchmarks/restart.py``'s table.

    .venv/bin/python -m tests.benchmarks.scale_out [--events 600000] [--partitions 4]
        [--restart-lengths 300000,1000000,1500000 | --restart-lengths ""] [--out RESULTS.md]

A real broker (started here) and real workers (``fraudgraph worker`` processes).

1. **Throughput**: 1 (or 2) workers start on a fresh ``--partitions``-partition topic; once every
   worker is ready (partitions assigned), the first ``--events`` events of the simulator's 3-day
   stream (the speed benchmark's, with its 24k-account operation) are produced to it, faster than
   the workers read. Timed from the first produce to every input record consumed *and* every change
   record applied by stage B
   (``fraudgraph_changes_lag_messages`` 0). Reported beside the per-stage busy share, so that what
   limits it is visible: stage A (per partition, splits across workers) or stage B (one owner), and
   beside the baseline in the same run: a bare Faust agent that only counts the records it is
   given, on the same topic layout — the most any Faust worker gets from this broker here.
2. **Latency**: live traffic at ``--rate`` events/s (benign accounts, each on a device and an IP of
   its own) with event time = wall time, and every 15 s a device farm of 120 accounts (the
   integration tests' ``farm``) produced as it happens; 1 s ticks, 2 s allowed lateness. For each
   alert opened: Kafka timestamp of the alert record minus the event time that made the ring
   alert-worthy (``detected_at``), in total and after the watermark passed that event's tick
   (``ceil(detected_at / tick) * tick + lateness``): the part that is the lateness hold is stated
   separately.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import subprocess
import sys
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path

from kafka import KafkaProducer

from streams.dev.broker import DevKafka
from streams.dev.localrun import wait_for
from tests.benchmarks.restart import emit, machine, measure
from tests.benchmarks.speed import stream
from tests.integration.conftest import WorkerHandle, contract_json
from tests.unit.scenarios import farm

TICK, LATENESS = 1.0, 2.0


def throughput(broker: DevKafka, lines: list[bytes], keys: list[bytes], partitions: int, n_workers: int,
               tmp: Path) -> dict[str, float]:
    first = WorkerHandle(broker, tmp, partitions, checkpoint_seconds=0.0, window_days=1.0)
    workers = [first] + [first.twin(f"w{i}") for i in range(1, n_workers)]
    try:
        for w in workers:
            w.launch()
        wait_for(lambda: all(w.metric("fraudgraph_recovering") == 0 for w in workers) and
                 sum(w.metric("fraudgraph_assigned_partitions") or 0 for w in workers) == partitions and
                 all((w.metric("fraudgraph_assigned_partitions") or 0) > 0 for w in workers), 300, "workers ready")
        started = time.perf_counter()
        producing = threading.Thread(target=fast_produce, args=(broker.bootstrap, first.settings.events_topic, lines, keys))
        producing.start()  # the workers consume while the topic fills (faster than they read it)
        wait_for(lambda: sum(w.consumed() for w in workers) >= len(lines), 3600, "input consumed", interval=1.0)
        producing.join()
        consumed = time.perf_counter() - started

        def drained() -> bool:
            owners = [w for w in workers if w.metric("fraudgraph_global_stage_owner") == 1]
            return len(owners) == 1 and owners[0].metric("fraudgraph_changes_lag_messages") == 0

        wait_for(drained, 3600, "stage B drained", interval=1.0)
        done = time.perf_counter() - started
        owner = next(w for w in workers if w.metric("fraudgraph_global_stage_owner") == 1)
        sent = sum(w.metric('fraudgraph_change_records_total{direction="sent"}') or 0 for w in workers)
        return {"workers": n_workers, "events": len(lines), "consumed_s": consumed, "done_s": done,
                "events_per_s": len(lines) / done, "change_records": sent,
                "alerts": owner.metric("fraudgraph_alerts_total") or 0,
                "stage_a_busy": sum(w.metric("fraudgraph_engine_batch_seconds_sum") or 0 for w in workers) / done}
    finally:
        for w in workers:
            w.stop()


def fast_produce(bootstrap: str, topic: str, lines: list[bytes], keys: list[bytes]) -> None:
    """Produce with aiokafka in large batches (kafka-python's per-record path is slower than a worker)."""
    import asyncio

    from aiokafka import AIOKafkaProducer

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20, max_batch_size=1 << 20,
                                    max_request_size=4 << 20)
        await producer.start()
        try:
            for i in range(0, len(lines), 5000):
                futures = [await producer.send(topic, value=v, key=k) for k, v in zip(keys[i:i + 5000], lines[i:i + 5000], strict=True)]
                await asyncio.gather(*futures)
        finally:
            await producer.stop()

    asyncio.run(run())


def bare_faust(broker: DevKafka, lines: list[bytes], keys: list[bytes], partitions: int, tmp: Path) -> float:
    """The baseline: events/s of a Faust agent that only counts what it is given (same topic layout)."""
    topic = f"bare-{time.time_ns()}"
    broker.create_topics([topic], partitions=partitions)
    fast_produce(broker.bootstrap, topic, lines, keys)
    out = tmp / "bare.out"
    child = subprocess.Popen([sys.executable, "-m", "tests.benchmarks.scale_out", "--bare-faust", broker.bootstrap, topic,
                              str(len(lines)), str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        child.wait(timeout=1800)  # it exits once it has counted every record
    finally:
        child.kill()
    if not out.exists():
        raise RuntimeError(f"the bare Faust agent exited with {child.returncode} without a result")
    return float(out.read_text())


def child_bare_faust(bootstrap: str, topic: str, n: int, out: str) -> None:
    import faust
    from faust.worker import Worker

    app = faust.App(f"bare-{topic}", broker=f"kafka://{bootstrap}", store="memory://", web_enabled=False,
                    consumer_auto_offset_reset="earliest", datadir=f"{out}.faust")
    source = app.topic(topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    seen = {"n": 0, "t": 0.0}

    @app.agent(source)
    async def count(stream: faust.StreamT[bytes]) -> None:
        async for batch in stream.take_events(2000, within=0.25):  # type: ignore[attr-defined]
            seen["t"] = seen["t"] or time.perf_counter()
            seen["n"] += len(batch)
            if seen["n"] >= n:
                Path(out).write_text(f"{seen['n'] / (time.perf_counter() - seen['t']):.1f}")
                os._exit(0)

    Worker(app, loglevel="error", quiet=True).execute_from_commandline()


def live_traffic(bootstrap: str, topic: str, rate: float, seconds: float, stop: threading.Event) -> int:
    """Benign background at ``rate`` events/s plus a farm every 15 s, each event sent at its own time."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=5)
    rng = random.Random(5)
    started = time.time()
    pending: list[tuple[float, bytes, bytes]] = []
    farms = 0
    sent = 0
    next_farm = started + 5.0
    while not stop.is_set() and time.time() - started < seconds:
        now = time.time()
        if now >= next_farm:
            for e in farm(f"live{farms}-", 120, devices=8, t=now, step=0.05):
                pending.append((e.ts, e.account_id.encode(), contract_json(e)))
            pending.sort(key=lambda x: x[0])
            farms += 1
            next_farm += 15.0
        for _ in range(max(1, int(rate * 0.01))):
            i = rng.randrange(1_000_000)
            event = {"event_id": f"b{sent}-{i}", "type": "login", "account_id": f"user{i}",
                     "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z",
                     "device_id": f"dev{i}", "ip": f"10.{i % 250}.{i // 250 % 250}.{i // 62500}"}
            producer.send(topic, key=event["account_id"].encode(), value=json.dumps(event).encode())
            sent += 1
        while pending and pending[0][0] <= time.time():
            _ts, key, value = pending.pop(0)
            producer.send(topic, key=key, value=value)
            sent += 1
        time.sleep(0.01)
    producer.flush()
    producer.close()
    return sent


def latency(broker: DevKafka, partitions: int, n_workers: int, rate: float, seconds: float, tmp: Path) -> dict[str, float]:
    first = WorkerHandle(broker, tmp, partitions, checkpoint_seconds=0.0, window_days=1.0,
                         tick_seconds=TICK, lateness_seconds=LATENESS)
    workers = [first] + [first.twin(f"w{i}") for i in range(1, n_workers)]
    try:
        for w in workers:
            w.launch()
        wait_for(lambda: all(w.metric("fraudgraph_recovering") == 0 and (w.metric("fraudgraph_assigned_partitions") or 0) > 0
                             for w in workers), 300, "workers ready")
        stop = threading.Event()
        sent = live_traffic(broker.bootstrap, first.settings.events_topic, rate, seconds, stop)
        time.sleep(5)
        total, after = [], []
        for record in first.read_topic(first.settings.alerts_topic):
            alert = json.loads(record.value)
            if alert["action"] != "opened":
                continue
            detected = _epoch(alert["detected_at"])
            published = record.timestamp / 1000.0
            total.append(published - detected)
            after.append(published - (math.ceil(detected / TICK) * TICK + LATENESS))
        return {"workers": n_workers, "sent": sent, "alerts": len(total), "rate": rate,
                "total_p50": _q(total, 0.5), "total_p99": _q(total, 0.99),
                "after_p50": _q(after, 0.5), "after_p99": _q(after, 0.99)}
    finally:
        for w in workers:
            w.stop()


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _q(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[min(98, max(0, int(q * 100) - 1))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benign", type=int, default=70000)
    parser.add_argument("--events", type=int, default=600_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--seconds", type=float, default=95.0)
    parser.add_argument("--restart-lengths", default="300000,1000000,1500000")
    parser.add_argument("--out")
    parser.add_argument("--bare-faust", nargs=4, help=argparse.SUPPRESS)  # the baseline's child process
    args = parser.parse_args(argv)
    if args.bare_faust:
        bootstrap, topic, n, out_path = args.bare_faust
        child_bare_faust(bootstrap, topic, int(n), out_path)
        return 0
    path, _total = stream(args.benign, 1.0, 3, 11)
    with gzip.open(path, "rb") as handle:
        lines = [line for line in handle.read().splitlines() if line][:args.events]
    keys = [json.loads(line)["account_id"].encode() for line in lines]
    through, lat = [], []
    with DevKafka() as broker, tempfile.TemporaryDirectory() as tmp:
        bare = bare_faust(broker, lines, keys, args.partitions, Path(tmp))
        print(f"bare Faust agent: {bare:,.0f} events/s", flush=True)
        for n in (1, 2):
            work = Path(tmp) / f"t{n}"
            work.mkdir()
            through.append(throughput(broker, lines, keys, args.partitions, n, work))
            print(f"throughput: {through[-1]}", flush=True)
        for n in (1, 2):
            work = Path(tmp) / f"l{n}"
            work.mkdir()
            lat.append(latency(broker, args.partitions, n, args.rate, args.seconds, work))
            print(f"latency: {lat[-1]}", flush=True)
    head = f"## Through Kafka, 1 and 2 workers ({machine()})"
    out = [head, "",
           f"Throughput: {len(lines):,} events of the 3-day simulated stream produced to a {args.partitions}-partition input "
           "topic once all workers are ready; from the first produce to every record consumed and every change applied "
           "by stage B. "
           "Stage A busy = seconds in the windows' batches per wall second, summed over workers.", "",
           "| workers | events/s | input consumed s | stage B drained s | change records | alerts | stage A busy |",
           "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in through:
        out.append(f"| {r['workers']} | {r['events_per_s']:,.0f} | {r['consumed_s']:.1f} | {r['done_s']:.1f} | "
                   f"{r['change_records']:,.0f} | {r['alerts']:,.0f} | {r['stage_a_busy']:.2f} |")
    out.append(f"| 2 / 1 | {through[1]['events_per_s'] / through[0]['events_per_s']:.2f}x | | | | | |")
    out.append(f"| baseline: a bare Faust agent (1 worker, counts its batches, nothing else) | {bare:,.0f} | | | | | |")
    out.append(f"| 1 worker / baseline | {through[0]['events_per_s'] / bare:.2f} | | | | | |")
    out += ["", f"Latency: live traffic at {args.rate:,.0f} events/s for {args.seconds:.0f} s with event time = wall time, "
            f"a 120-account device farm every 15 s; tick {TICK:.0f} s, allowed lateness {LATENESS:.0f} s. Total = alert "
            "record timestamp − `detected_at`; after the watermark = total − the hold (tick alignment + lateness).", "",
            "| workers | events sent | alerts opened | total p50 s | total p99 s | after watermark p50 s | after watermark p99 s |",
            "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in lat:
        out.append(f"| {r['workers']} | {r['sent']:,.0f} | {r['alerts']:,.0f} | {r['total_p50']:.2f} | {r['total_p99']:.2f} | "
                   f"{r['after_p50']:.2f} | {r['after_p99']:.2f} |")
    text = "\n".join(out) + "\n"
    if args.restart_lengths:
        text += "\n" + measure(args.benign, [int(x) for x in args.restart_lengths.split(",")])
    emit(text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
