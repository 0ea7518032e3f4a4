"""``fraudgraph replay``: contract events from files through the identical pipeline, no Kafka.

JSON Lines (``.jsonl``, ``.jsonl.gz``) or Parquet, read in file order. Invalid lines are written to a
dead-letter JSON Lines file beside the audit store (with the reason and file/line), never dropped.
"""

from __future__ import annotations

import gzip
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pyarrow.parquet as pq

from streams.pipeline import Emitted, Pipeline, Record


def read_records(path: Path) -> Iterator[Record]:
    name = path.name
    if name.endswith(".parquet"):
        parquet = pq.ParquetFile(path)
        line = 0
        for batch in parquet.iter_batches(batch_size=10_000):
            for row in batch.to_pylist():
                line += 1
                clean = {k: v for k, v in row.items() if v is not None}
                yield Record(orjson.dumps(clean), None, 0, line, name)
        return
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "rb") as handle:
        for line, raw in enumerate(handle, start=1):
            raw = raw.rstrip(b"\r\n")
            if raw:
                yield Record(raw, None, 0, line, name)


def replay(paths: list[Path], pipeline: Pipeline, dlq_path: Path | None = None, batch: int = 5000,
           progress: bool = True) -> dict[str, float]:
    started = time.monotonic()
    last_report = started
    totals: dict[str, float] = {"records": 0, "dead": 0, "alerts": 0}
    dlq = open(dlq_path, "ab") if dlq_path else None

    def account(emitted: Emitted) -> None:
        totals["alerts"] += len(emitted.alerts)
        totals["dead"] += len(emitted.dead)
        if dlq:
            for dead in emitted.dead:
                dlq.write(orjson.dumps({"reason": dead.reason, "source": dead.record.topic,
                                        "line": dead.record.offset,
                                        "value": (dead.record.value or b"").decode("utf-8", "replace")}) + b"\n")

    try:
        buffer: list[Record] = []
        for path in paths:
            for record in read_records(path):
                buffer.append(record)
                if len(buffer) >= batch:
                    account(pipeline.handle(buffer))
                    totals["records"] += len(buffer)
                    buffer = []
                    now = time.monotonic()
                    if progress and now - last_report >= 2.0:
                        last_report = now
                        rate = totals["records"] / (now - started)
                        print(f"replay: {totals['records']:,} records, {rate:,.0f}/s, {totals['alerts']} alerts, "
                              f"{totals['dead']} invalid", file=sys.stderr, flush=True)
        if buffer:
            account(pipeline.handle(buffer))
            totals["records"] += len(buffer)
        account(pipeline.flush_held())
        pipeline.flush_audit()
        if pipeline.audit is not None:
            pipeline.audit.compact()
    finally:
        if dlq:
            dlq.close()
    totals["seconds"] = time.monotonic() - started
    return totals
