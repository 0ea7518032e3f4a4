"""``fraudgraph replay``: contract events from files through the identical pipeline, no Kafka.

JSON Lines (``.jsonl``, ``.jsonl.gz``) or Parquet, read in file order. Invalid lines are written to a
dead-letter JSON Lines file beside the audit store (with the reason and file/line), never dropped.

With a split engine (``fraudgraph replay`` builds one) stage A reads, decodes and windows the input
on a thread of its own while stage B applies the ticks before: the same batches in the same order, so
the same output as both stages on one thread (``tests/unit/test_determinism.py``).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from queue import Full, Queue

import orjson
import pyarrow.parquet as pq
from isal import igzip  # the gzip module's interface over ISA-L's inflate (docs/architecture.md, Dependencies)

from streams.runtime.allocator import release_free_memory
from streams.runtime.pipeline import Emitted, Fed, Pipeline


BLOCK_BYTES = 256 << 10  # decompressed per read: small enough that glibc serves the blocks from its heap
# after the first (not a fresh mapping, faulted in page by page, per block) and the reader's buffers stay small
AUDIT_FLUSH_ROWS = 200_000
Steps = Generator[tuple[Emitted, int], None, None]  # what each step emitted, and the input records it took
AHEAD = 4  # input batches stage A may have fed that stage B has not applied yet (memory stays bounded)


def read_batches(path: Path, batch: int = 5000) -> Iterator[tuple[list[bytes], int]]:
    """(lines, line number of the first) in file order, ``batch`` lines at a time where they follow each
    other; blank lines are skipped but counted. Parquet rows become JSON objects (nulls dropped)."""
    name = path.name
    if name.endswith(".parquet"):
        parquet = pq.ParquetFile(path)
        line = 1
        for table in parquet.iter_batches(batch_size=batch):
            rows = [orjson.dumps({k: v for k, v in row.items() if v is not None}) for row in table.to_pylist()]
            yield rows, line
            line += len(rows)
        return
    pending: list[bytes] = []  # consecutive lines not yet handed out, the first numbered `start`
    start = 1
    for lines, first in _line_runs(path):
        if pending and first != start + len(pending):
            yield pending, start
            pending = []
        if not pending:
            start = first
        pending += lines
        while len(pending) >= batch:
            yield pending[:batch], start
            del pending[:batch]
            start += batch
    if pending:
        yield pending, start


def _line_runs(path: Path) -> Iterator[tuple[list[bytes], int]]:
    """Runs of consecutive non-blank lines of a text file, each with its first line number, read in blocks."""
    opener = igzip.open if path.name.endswith(".gz") else open
    line = 1
    tail = b""
    with opener(path, "rb") as handle:
        while block := handle.read(BLOCK_BYTES):
            data = tail + block
            lines = data.split(b"\n")
            tail = lines.pop()  # the line the next block completes (b"" after a newline)
            if b"\r" not in data and b"" not in lines:  # a memchr, and a blank line is an empty item
                yield lines, line
            else:
                yield from _non_blank(lines, line)
            line += len(lines)
    if tail:
        yield from _non_blank([tail], line)


def _non_blank(lines: list[bytes], first: int) -> Iterator[tuple[list[bytes], int]]:
    """Runs of non-blank lines (\r\n endings stripped), each with its first line number."""
    if all(lines) and not any(raw.endswith(b"\r") for raw in lines):
        yield lines, first
        return
    run: list[bytes] = []
    start = first
    for i, raw in enumerate(lines):
        raw = raw.rstrip(b"\r")
        if raw:
            if not run:
                start = first + i
            run.append(raw)
        elif run:
            yield run, start
            run = []
    if run:
        yield run, start


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

    # Segments are written as it goes (memory stays bounded, readers see progress), on a thread of their
    # own: Parquet encoding and compression release the GIL, so the engine goes on with the next batches
    # on the other core. One flush at a time; the next waits for the one before, and raises its error.
    flusher = ThreadPoolExecutor(1, thread_name_prefix="audit-flush")
    flushing: Future[None] | None = None

    def flush_behind() -> None:
        pipeline.flush_audit()
        release_free_memory()

    steps = _stages_apart(paths, pipeline, batch) if pipeline.engine.split else _stages_together(paths, pipeline, batch)
    try:
        with closing(steps):
            for emitted, records in steps:
                account(emitted)
                totals["records"] += records
                if pipeline.audit is not None and pipeline.audit.pending() >= AUDIT_FLUSH_ROWS and (
                        flushing is None or flushing.done()):
                    if flushing is not None:
                        flushing.result()
                    flushing = flusher.submit(flush_behind)
                now = time.monotonic()
                if progress and now - last_report >= 2.0:
                    last_report = now
                    rate = totals["records"] / (now - started)
                    print(f"replay: {totals['records']:,} records, {rate:,.0f}/s, {totals['alerts']} alerts, "
                          f"{totals['dead']} invalid", file=sys.stderr, flush=True)
        if flushing is not None:
            flushing.result()
        pipeline.flush_audit()
        if pipeline.audit is not None:
            pipeline.audit.compact()
    finally:
        flusher.shutdown(wait=True)  # a flush under way finishes (its segment lands whole) before this returns
        if dlq:
            dlq.close()
    totals["seconds"] = time.monotonic() - started
    return totals


def _stages_together(paths: list[Path], pipeline: Pipeline, batch: int) -> Steps:
    """Both stages on the caller's thread, a batch at a time (an engine that shares its window's names)."""
    for path in paths:
        for lines, first in read_batches(path, batch):
            yield pipeline.handle_lines(lines, first, path.name), len(lines)
    yield pipeline.flush_held(), 0


_END = object()


def _stages_apart(paths: list[Path], pipeline: Pipeline, batch: int) -> Steps:
    """A split engine: stage A (read, decode, window) on a thread of its own, at most ``AHEAD`` input batches
    ahead of stage B (graph, scoring, audit rows) on the caller's. The kernel runs both without the GIL
    for most of their time, so on two cores they overlap. Stage A's error is raised here; when the
    caller stops early (or fails), stage A stops too."""
    handed: Queue[Fed | BaseException | object] = Queue(AHEAD)
    stop = threading.Event()

    def hand(item: Fed | BaseException | object) -> bool:
        while not stop.is_set():
            try:
                handed.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def stage_a() -> None:
        try:
            for path in paths:
                for lines, first in read_batches(path, batch):
                    if not hand(pipeline.feed_lines(lines, first, path.name)):
                        return
            if hand(pipeline.feed_end()):
                hand(_END)
        except BaseException as exc:  # to the caller's thread, which raises it
            hand(exc)

    reader = threading.Thread(target=stage_a, name="stage-a", daemon=True)
    reader.start()
    try:
        while (item := handed.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, Fed)
            yield pipeline.apply_fed(item), item.n_in
    finally:
        stop.set()
        reader.join()
