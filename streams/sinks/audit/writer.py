"""The audit store's writer: rows from the engine buffered as columns and flushed as one Parquet
segment per table (written to a temporary name and renamed, so a reader never sees half a file)."""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from graph.alerts import AlertUpdate
from graph.engine import ClusterSnapshot, EngineOutput
from streams.sinks.audit.compaction import compact
from streams.sinks.audit.schema import SCHEMAS, SEGMENT_WRITE, SHARED_TEXT, TS, column, times
from streams.sinks.audit.views import create
from streams.sinks.link_rows import LinkRows, LinkSource, packed_strings


class AuditStore:
    """Buffers rows from engine output and flushes them as Parquet segments (one per table)."""

    def __init__(self, db_path: str | os.PathLike[str], retention_days: float = 90.0,
                 clock: Callable[[], float] = time.time, writer: str = "") -> None:
        """``writer``: this process's name in its segments' file names (the worker's --instance-id), so that
        several workers append to one store without a name in common (default: host and process id)."""
        self.db_path = Path(db_path).resolve()
        self.parts = Path(str(self.db_path) + ".parts")
        self.writer = writer_tag(writer)
        self.retention_days = retention_days
        self.clock = clock
        self._cols = _empty_buffers()
        # cluster id -> its newest snapshot since the last flush: only the newest member, evidence and
        # link rows of a cluster are ever shown (the views; compaction keeps no others), so a cluster
        # re-scored several times between two flushes writes them once
        self._latest: dict[str, ClusterSnapshot] = {}
        self._links = LinkRows()  # account_link_rows, as the kernel's column buffers
        self._kept: dict[str, list[pa.Table]] = {}  # Arrow segments a failed flush left, written first next time
        # id -> (features dict, its JSON) since the last flush (the dict is held, so its id is not reused)
        self._json_of: dict[int, tuple[dict[str, float], str]] = {}
        self._lock = threading.Lock()  # the buffers
        self._flushing = threading.Lock()  # one flush at a time
        self._seq = 0
        self.rows_written = 0
        self.event_time_now = float("-inf")  # newest watermark seen: event-time retention ages against it

    # -- setup ------------------------------------------------------------------------------
    def create(self, wait_seconds: float = 30.0) -> None:
        """Make the segment folders and (re)write the views over them (``views.create``)."""
        create(self.db_path, self.parts, wait_seconds, self.writer)

    def published_versions(self) -> dict[str, int]:
        """alert id -> the newest version acknowledged by fraud-alerts, as recorded (read once at start)."""
        con = duckdb.connect()
        try:
            rows = con.execute(f"SELECT alert_id, max(version) FROM read_parquet("
                               f"'{self.parts / 'alert_publications'}/*.parquet', union_by_name = true) "
                               "GROUP BY alert_id").fetchall()
        finally:
            con.close()
        return {alert_id: int(version) for alert_id, version in rows}

    # -- rows from the engine ---------------------------------------------------------------
    # Rows are buffered as columns (one list per column, in schema order) and written as one Arrow
    # table per flush: no per-row dict or dataclass conversion on the hot path.
    def add_output(self, out: EngineOutput) -> None:
        with self._lock:
            self.event_time_now = max(self.event_time_now, out.watermark)
            for update in out.alerts:
                self._add_alert(update)
            if out.lineage:
                written = self.clock()
                c = self._cols["cluster_lineage_rows"]
                n = len(out.lineage)
                c[0].extend([e.cluster_id for e in out.lineage])
                c[1].extend([e.kind for e in out.lineage])
                c[2].extend([e.at for e in out.lineage])
                c[3].extend([e.size for e in out.lineage])
                c[4].extend([e.other for e in out.lineage])
                c[5].extend([written] * n)
            for snapshot in out.clusters:
                self._add_cluster(snapshot)
            c = self._cols["cluster_snapshots"]
            for cluster_id, at in out.gone:  # as of the tick it went (not the batch's end: the same in any batching)
                _row(c, cluster_id, at, 0, 0.0, None, None, None, at, "{}", "gone", 0, 0, None)

    def add_links(self, source: LinkSource, cluster_id: str, accounts: list[str]) -> None:
        """The links behind an alert's new members (``account_link_rows``), read from ``source`` now.
        The engine calls this at the tick the alert gained them (``Detector.capture_links``): read after
        a whole batch, they would depend on where the batch ended."""
        with self._lock:
            self._links.add(source, cluster_id, accounts)

    def _add_alert(self, u: AlertUpdate) -> None:
        _row(self._cols["alert_versions"], u.alert_id, u.version, u.cluster_id, u.action, u.notify, u.severity, u.score,
             u.member_count, u.detected_at, u.alerted_at, u.created_at, u.reason,
             self._features_json(u.features), u.evidence_json, u.requests, u.tokens_out, u.summary or None)
        c = self._cols["alert_member_changes"]
        at = u.created_at
        for accounts, added in ((u.members_added, True), (u.members_removed, False)):
            n = len(accounts)
            if n:
                c[0].extend([u.alert_id] * n)
                c[1].extend([u.version] * n)
                c[2].extend(accounts)
                c[3].extend([added] * n)
                c[4].extend([at] * n)

    def _features_json(self, features: dict[str, float]) -> str:
        """An alert's features as JSON, made once per score: the membership versions between two scores
        share the score's features (and evidence) objects, and then share one string, which the flush
        converts once (``_column``'s ``shared``)."""
        known = self._json_of.get(id(features))
        if known is None or known[0] is not features:
            known = self._json_of[id(features)] = (features, orjson.dumps(features, option=orjson.OPT_SORT_KEYS).decode())
        return known[1]

    def _add_cluster(self, s: ClusterSnapshot) -> None:
        _row(self._cols["cluster_snapshots"], s.cluster_id, s.scored_at, len(s.members), s.scored.score,
             s.scored.severity, s.verdict, s.born_at, s.updated_at,
             orjson.dumps(s.scored.features, option=orjson.OPT_SORT_KEYS).decode(), "live", s.scored.requests,
             s.scored.tokens_out, s.scored.summary or None)
        self._latest[s.cluster_id] = s

    @staticmethod
    def _member_rows(s: ClusterSnapshot) -> pa.Table:
        """A snapshot's member rows, from its packed names as they are."""
        n = len(s.members)
        return pa.Table.from_arrays(
            [pa.repeat(pa.scalar(s.cluster_id, pa.string()), n), times(pa.repeat(pa.scalar(s.scored_at, pa.float64()), n)),
             packed_strings(*s.members.buffers())], schema=SCHEMAS["cluster_member_snapshots"])

    def _add_snapshot_rows(self, s: ClusterSnapshot) -> None:
        """A snapshot's evidence and link rows."""
        for table, rows in (("cluster_evidence_snapshots", s.scored.evidence), ("cluster_link_snapshots", s.scored.shared)):
            if rows:
                c = self._cols[table]
                c[0].extend([s.cluster_id] * len(rows))
                c[1].extend([s.scored_at] * len(rows))
                for column, values in zip(c[2:], zip(*rows), strict=True):
                    column.extend(values)

    def add_publication(self, alert_id: str, version: int, at: float) -> None:
        with self._lock:
            _row(self._cols["alert_publications"], alert_id, version, at)

    def add_verdict(self, verdict_id: str, cluster_id: str, verdict: str, analyst: str, note: str, at: float) -> None:
        with self._lock:
            _row(self._cols["verdict_rows"], verdict_id, cluster_id, verdict, analyst, note, at)

    # -- writing ----------------------------------------------------------------------------
    def pending(self) -> int:
        with self._lock:
            return (sum(len(cols[0]) for cols in self._cols.values()) + sum(len(s.members) for s in self._latest.values())
                    + len(self._links) + sum(int(t.num_rows) for tables in self._kept.values() for t in tables))

    def flush(self) -> int:
        """Write every buffered row as one new segment per table; returns rows written. One flush at a
        time: a flush that returns has every row added before it on disk, even if another thread's
        flush had taken some of them (a checkpoint relies on it)."""
        with self._flushing:
            return self._flush()

    def _flush(self) -> int:
        with self._lock:
            # Arrow pieces built before anything is taken out of the buffers: if this fails, nothing is lost
            members = [self._member_rows(snapshot) for snapshot in self._latest.values()]
            links = [pa.Table.from_arrays(self._links.columns(times), schema=SCHEMAS["account_link_rows"])
                     ] if len(self._links) else []
            for snapshot in self._latest.values():
                self._add_snapshot_rows(snapshot)
            self._latest = {}
            for name, tables in (("cluster_member_snapshots", members), ("account_link_rows", links)):
                tables = [t for t in tables if t.num_rows]
                if tables:
                    self._kept[name] = self._kept.get(name, []) + tables
            self._links = LinkRows()
            batches = {name: cols for name, cols in self._cols.items() if cols[0]}
            self._cols = _empty_buffers()
            self._json_of = {}
            kept, self._kept = self._kept, {}
        written = 0
        stamp = f"{int(self.clock() * 1000):015d}-{self.writer}"
        # per table: Arrow pieces already built, and buffered Python columns (None without)
        pending = [(name, kept.get(name, []), batches.get(name)) for name in SCHEMAS if name in batches or name in kept]
        try:
            while pending:
                name, tables, cols = pending[0]
                self._seq += 1
                if cols is not None:
                    tables = [*tables, pa.Table.from_arrays(
                        [column(col, field.type, (name, field.name) in SHARED_TEXT) for col, field in
                         zip(cols, SCHEMAS[name])], names=SCHEMAS[name].names)]
                table = tables[0] if len(tables) == 1 else pa.concat_tables([t.cast(SCHEMAS[name]) for t in tables])
                folder = self.parts / name
                final = folder / f"{stamp}-{self._seq:06d}.parquet"
                tmp = folder / f".{final.name}.tmp"
                # Without the Arrow schema in the file: a shared text column (a dictionary in memory) is
                # read back by any reader as the plain string the Parquet types say. SEGMENT_WRITE: plain
                # encoding and zstd at level 1 (Parquet's default dictionary encoding + snappy took longer on
                # the long evidence texts, for more bytes).
                pq.write_table(table, tmp, store_schema=False, **SEGMENT_WRITE)
                os.replace(tmp, final)  # atomic: readers see the whole segment or none of it
                written += table.num_rows
                pending.pop(0)
        except Exception:
            with self._lock:  # keep what was not written; the next flush retries it
                for name, tables, cols in pending:
                    if tables:
                        self._kept[name] = tables + self._kept.get(name, [])
                    for kept_col, col in zip(self._cols[name], cols or ()):
                        kept_col[:0] = col
            raise
        if written:  # one row per flush: investigators (and the freshness test) see how current the store is
            folder = self.parts / "audit_flushes"
            final = folder / f"{stamp}-{self._seq:06d}-f.parquet"
            tmp = folder / f".{final.name}.tmp"
            pq.write_table(pa.Table.from_arrays(
                [column([self.clock()], TS), pa.array([written], pa.int64()), pa.array([os.getpid()], pa.int64())],
                schema=SCHEMAS["audit_flushes"]), tmp)
            os.replace(tmp, final)
        self.rows_written += written
        return written

    def compact(self, min_segments: int = 2) -> None:
        """Rewrite each table as one segment: superseded versions and rows past retention dropped
        (``compaction.compact``). Where several workers share the store, one of them does it (stage B's owner)."""
        compact(self.parts, self.retention_days, self.clock(), self.event_time_now, min_segments, self.writer)


def writer_tag(name: str) -> str:
    """A writer's name as it appears in segment file names: letters, digits, ``_`` and ``.`` only."""
    name = name or f"{socket.gethostname()}_{os.getpid()}"
    return re.sub(r"[^A-Za-z0-9_.]", "_", name)[:64] or "w"


def _empty_buffers() -> dict[str, list[list[Any]]]:
    return {name: [[] for _ in schema] for name, schema in SCHEMAS.items()}


def _row(columns: list[list[Any]], *values: Any) -> None:
    for col, value in zip(columns, values, strict=True):
        col.append(value)
