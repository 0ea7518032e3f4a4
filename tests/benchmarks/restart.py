"""Restart time against the length of the input topic, with checkpoints and without, in one run.

    .venv/bin/python -m tests.benchmarks.restart [--benign 70000] [--lengths 300000,1000000,1500000]

A real broker (started here) and the real worker. Traffic: the simulator's 12-day stream (70k
benign accounts and the planted operations, seed 23), with a 1-day window, so the topic holds many
times the window's state. For each length N the first N events go to a fresh topic; a worker with
checkpoints every 30 s consumes them, writes a checkpoint after the last, and is killed with
SIGKILL. Then, on the same topic:

1. **checkpoint**: the worker restarts (restores the checkpoint, re-reads the records after it);
2. **full rebuild**: the same restart with ``--checkpoint-seconds 0`` (re-reads the topic), the baseline.

Each restart is timed from launch to ready (``fraudgraph_recovering`` 0 and the partitions assigned),
which includes waiting out the killed worker's group session (10 s) only in the first; the restore
and the re-read are quoted from the worker's start line and its recovery lines. Prints markdown; --out appends it.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import signal
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from streams.dev.broker import DevKafka
from streams.dev.localrun import wait_for
from tests.benchmarks.speed import stream
from tests.integration.conftest import WorkerHandle


def ready_seconds(w: WorkerHandle) -> float:
    started = time.perf_counter()
    w.start(timeout=1800)  # a full rebuild of a long topic takes minutes
    return time.perf_counter() - started


def one_length(broker: DevKafka, lines: list[bytes], keys: list[bytes], n: int, tmp: Path) -> dict[str, float]:
    w = WorkerHandle(broker, tmp, 1, checkpoint_seconds=30.0, window_days=1.0)
    w.start()
    w.produce(lines[:n], keys[:n])
    w.wait_consumed(timeout=1800)
    consumed_at = time.time()
    wait_for(lambda: (w.metric("fraudgraph_last_checkpoint_timestamp_seconds") or 0) > consumed_at, 120,
             "a checkpoint after the input", w.proc)
    links = w.metric("fraudgraph_live_links") or 0
    size = w.metric("fraudgraph_checkpoint_bytes") or 0
    capture = w.metric('fraudgraph_checkpoint_duration_seconds{part="capture"}') or 0
    time.sleep(4)  # Faust's commit
    os.killpg(w.proc.pid, signal.SIGKILL)
    w.proc.wait()

    with_ckpt = ready_seconds(w)
    adopted = re.findall(r"adopted the checkpoint .* in ([\d.]+)s", w.log())
    tail = (w.metric("fraudgraph_recovered_records") or 0) + (w.metric("fraudgraph_recovered_changes") or 0)
    reread = sum(float(x) for x in re.findall(r"recovery: re-read \d+ records of .* in ([\d.]+)s", w.log()))
    w.stop()
    w.settings = replace(w.settings, checkpoint_seconds=0.0)
    full = ready_seconds(w)
    rebuilt = (w.metric("fraudgraph_recovered_records") or 0) + (w.metric("fraudgraph_recovered_changes") or 0)
    w.stop()
    return {"events": n, "links": links, "bytes": size, "capture": capture, "ready_ckpt": with_ckpt,
            "restore": sum(float(x) for x in adopted) if adopted else float("nan"),
            "tail": tail, "tail_seconds": reread, "ready_full": full, "rebuilt": rebuilt}


def history(benign: int) -> tuple[list[bytes], list[bytes], int]:
    """The 12-day stream's lines, their keys (account ids) and its length."""
    path, total = stream(benign, 1.0, 12, 23)
    with gzip.open(path, "rb") as handle:
        lines = [line for line in handle.read().splitlines() if line]
    return lines, [json.loads(line)["account_id"].encode() for line in lines], total


def measure(benign: int, lengths: list[int]) -> str:
    """The restart table (markdown) for the first ``lengths`` events of the 12-day stream."""
    lines, keys, total = history(benign)
    rows = []
    with DevKafka() as broker, tempfile.TemporaryDirectory() as tmp:
        for i, n in enumerate(min(n, len(lines)) for n in lengths):
            work = Path(tmp) / f"n{i}"
            work.mkdir()
            rows.append(one_length(broker, lines, keys, n, work))
            print(f"restart: {rows[-1]}", flush=True)
    out = [f"## Restart vs topic length ({machine()})", "",
           f"12-day simulated stream ({total:,} events), 1-day window, checkpoint every 30 s, worker killed with "
           "SIGKILL after a checkpoint; ready = launch to `fraudgraph_recovering` 0 with partitions assigned "
           "(the checkpoint restart includes the 10 s wait for the killed worker's group session).", "",
           "| topic events | live links | checkpoint | capture s | ready, checkpoint s | restore s | tail re-read "
           "| ready, full rebuild s | records rebuilt | full / checkpoint |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['events']:,.0f} | {r['links']:,.0f} | {r['bytes'] / 2**20:.1f} MiB | {r['capture']:.2f} | "
                   f"{r['ready_ckpt']:.1f} | {r['restore']:.2f} | {r['tail']:,.0f} | {r['ready_full']:.1f} | "
                   f"{r['rebuilt']:,.0f} | {r['ready_full'] / r['ready_ckpt']:.1f}x |")
    return "\n".join(out) + "\n"


def machine() -> str:
    return (f"{time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, {os.cpu_count()} vCPU, "
            f"Python {platform.python_version()}")


def emit(text: str, out: str | None) -> None:
    print(text)
    if out:
        with open(out, "a") as handle:
            handle.write("\n" + text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benign", type=int, default=70000)
    parser.add_argument("--lengths", default="300000,1000000,1500000")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    emit(measure(args.benign, [int(x) for x in args.lengths.split(",")]), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
