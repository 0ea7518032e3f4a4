"""The investigators' audit store: append-only Parquet segments behind a DuckDB file of views.

DuckDB allows one writing process or many reading ones, never both. So the worker never holds the
DuckDB file: it appends batched Parquet segments under ``<audit-db>.parts/<table>/`` (one file per
flush, written to a temp name and renamed, so a reader never sees half a file), and the DuckDB file
at ``--audit-db`` holds only views over them. An investigator opens that file read-only, for as long
as they like, while the worker writes; each query sees every segment renamed into place before it
started (at most one flush interval old).

Idempotent: every row carries its natural key and version; the views keep one row per key (the
newest version), so replaying the same events or restarting the worker adds no visible duplicates.
``compact()`` rewrites each table as one segment (dropping superseded and expired rows); a reader
that races a compaction may get "file not found" once — retry the query (README).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from graph.alerts import AlertUpdate
from graph.engine import ClusterSnapshot, EngineOutput
from streams.link_rows import LinkRows, LinkSource, packed_strings
TS = pa.timestamp("us", tz="UTC")
SCHEMAS: dict[str, pa.Schema] = {
    "alert_versions": pa.schema([
        ("alert_id", pa.string()), ("version", pa.int64()), ("cluster_id", pa.string()),
        ("action", pa.string()), ("notify", pa.bool_()), ("severity", pa.string()), ("score", pa.float64()),
        ("member_count", pa.int64()), ("detected_at", TS), ("alerted_at", TS), ("created_at", TS),
        ("reason", pa.string()), ("features", pa.string()), ("evidence", pa.string()),
        ("requests", pa.int64()), ("tokens_out", pa.int64()), ("summary", pa.string()),
    ]),
    "alert_member_changes": pa.schema([
        ("alert_id", pa.string()), ("version", pa.int64()), ("account_id", pa.string()), ("added", pa.bool_()),
        ("changed_at", TS),
    ]),
    "cluster_snapshots": pa.schema([
        ("cluster_id", pa.string()), ("snapshot_at", TS), ("size", pa.int64()), ("score", pa.float64()),
        ("severity", pa.string()), ("verdict", pa.string()), ("born_at", TS), ("updated_at", TS),
        ("features", pa.string()), ("status", pa.string()), ("requests", pa.int64()), ("tokens_out", pa.int64()),
        ("summary", pa.string()),
    ]),
    "cluster_member_snapshots": pa.schema([
        ("cluster_id", pa.string()), ("snapshot_at", TS), ("account_id", pa.string()),
    ]),
    "cluster_evidence_snapshots": pa.schema([
        ("cluster_id", pa.string()), ("snapshot_at", TS), ("entity_type", pa.string()), ("entity_value", pa.string()),
        ("members_sharing", pa.int64()), ("first_seen", TS), ("last_seen", TS),
    ]),
    "cluster_link_snapshots": pa.schema([  # infrastructure a cluster shares with another, not joined to it
        ("cluster_id", pa.string()), ("snapshot_at", TS), ("other_cluster_id", pa.string()), ("entity_type", pa.string()),
        ("shared_entities", pa.int64()), ("accounts_here", pa.int64()), ("accounts_there", pa.int64()),
    ]),
    "cluster_lineage_rows": pa.schema([
        ("cluster_id", pa.string()), ("kind", pa.string()), ("happened_at", TS), ("size", pa.int64()),
        ("other_cluster_id", pa.string()), ("written_at", TS),
    ]),
    "account_link_rows": pa.schema([
        ("account_id", pa.string()), ("entity_type", pa.string()), ("entity_value", pa.string()),
        ("last_seen", TS), ("cluster_id", pa.string()),
    ]),
    "alert_publications": pa.schema([  # what reached fraud-alerts (acknowledged), so a restart never re-sends it
        ("alert_id", pa.string()), ("version", pa.int64()), ("published_at", TS),
    ]),
    "audit_flushes": pa.schema([
        ("flushed_at", TS), ("rows", pa.int64()), ("pid", pa.int64()),
    ]),
    "verdict_rows": pa.schema([
        ("verdict_id", pa.string()), ("cluster_id", pa.string()), ("verdict", pa.string()), ("analyst", pa.string()),
        ("note", pa.string()), ("decided_at", TS),
    ]),
}

# The investigator-facing names. Each is one row per natural key, newest version wins.
VIEWS = {
    "alerts": """
        SELECT alert_id, cluster_id, severity, member_count, requests, tokens_out, score, detected_at, alerted_at,
               created_at, version,
               CASE WHEN action = 'closed' THEN 'closed' ELSE 'open' END AS status, action AS last_action,
               reason, summary, features, evidence
        FROM (SELECT DISTINCT * FROM {alert_versions})
        QUALIFY row_number() OVER (PARTITION BY alert_id ORDER BY version DESC) = 1""",
    "alert_history": """
        SELECT * FROM {alert_versions}
        QUALIFY row_number() OVER (PARTITION BY alert_id, version ORDER BY created_at) = 1""",
    "alert_members": """
        SELECT alert_id, account_id, changed_at AS added_at FROM (
            SELECT * FROM {alert_member_changes}
            QUALIFY row_number() OVER (PARTITION BY alert_id, account_id ORDER BY version DESC) = 1)
        WHERE added""",
    "clusters": """
        SELECT cluster_id, status, size, requests, tokens_out, score, severity, verdict, born_at, updated_at,
               snapshot_at, summary, features
        FROM {cluster_snapshots}
        QUALIFY row_number() OVER (PARTITION BY cluster_id ORDER BY snapshot_at DESC,
                                   CASE status WHEN 'live' THEN 1 ELSE 0 END) = 1""",
    "cluster_members": """
        SELECT DISTINCT m.cluster_id, m.account_id FROM {cluster_member_snapshots} m
        JOIN clusters c ON c.cluster_id = m.cluster_id AND c.snapshot_at = m.snapshot_at AND c.status = 'live'""",
    "cluster_evidence": """
        SELECT DISTINCT e.cluster_id, e.entity_type, e.entity_value, e.members_sharing, e.first_seen, e.last_seen
        FROM {cluster_evidence_snapshots} e
        JOIN clusters c ON c.cluster_id = e.cluster_id AND c.snapshot_at = e.snapshot_at""",
    "cluster_links": """
        SELECT DISTINCT l.cluster_id, l.other_cluster_id, l.entity_type, l.shared_entities, l.accounts_here,
               l.accounts_there, l.snapshot_at
        FROM {cluster_link_snapshots} l
        JOIN clusters c ON c.cluster_id = l.cluster_id AND c.snapshot_at = l.snapshot_at AND c.status = 'live'""",
    "cluster_lineage": """
        SELECT cluster_id, kind, happened_at, size, other_cluster_id FROM {cluster_lineage_rows}
        QUALIFY row_number() OVER (PARTITION BY cluster_id, kind, happened_at, other_cluster_id
                                   ORDER BY written_at DESC NULLS LAST, size DESC) = 1""",
    "account_links": """
        SELECT account_id, entity_type, entity_value, max(last_seen) AS last_seen,
               list(DISTINCT cluster_id ORDER BY cluster_id) AS cluster_ids
        FROM {account_link_rows} GROUP BY ALL""",
    "verdicts": "SELECT DISTINCT * FROM {verdict_rows}",
    "freshness": """
        SELECT max(flushed_at) AS last_flush, epoch(now()) - epoch(max(flushed_at)) AS age_seconds,
               sum(rows) AS rows_written
        FROM {audit_flushes}""",
}


# The column `fraudgraph export --since/--until` filters each view on.
EXPORT_TIME_COLUMNS = {"alerts": "detected_at", "alert_history": "created_at", "clusters": "updated_at",
                       "cluster_lineage": "happened_at", "account_links": "last_seen", "verdicts": "decided_at",
                       "cluster_evidence": "last_seen", "alert_members": "added_at", "freshness": "last_flush",
                       "cluster_links": "snapshot_at"}


def _ts(seconds: float | None) -> int | None:
    """Epoch seconds to the microseconds pyarrow stores."""
    if seconds is None or seconds in (float("inf"), float("-inf")):
        return None
    return int(round(seconds * 1_000_000))


class AuditStore:
    """Buffers rows from engine output and flushes them as Parquet segments (one per table)."""

    def __init__(self, db_path: str | os.PathLike[str], retention_days: float = 90.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.db_path = Path(db_path).resolve()
        self.parts = Path(str(self.db_path) + ".parts")
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
        self._lock = threading.Lock()
        self._seq = 0
        self.rows_written = 0
        self.event_time_now = float("-inf")  # newest watermark seen: event-time retention ages against it

    # -- setup ------------------------------------------------------------------------------
    def create(self, wait_seconds: float = 30.0) -> None:
        """Make the segment folders and (re)write the views. If readers keep the file open past
        ``wait_seconds`` and the views already exist, keep them: they only name segment folders."""
        for name, schema in SCHEMAS.items():
            folder = self.parts / name
            folder.mkdir(parents=True, exist_ok=True)
            for leftover in folder.glob(".*.tmp"):  # a flush or compaction interrupted by a crash
                leftover.unlink(missing_ok=True)
            empty = folder / "000-schema.parquet"
            # The empty segment carries the current columns, so views over segments written by an
            # older version (without a column added since) still bind: union_by_name fills NULLs.
            if not empty.exists() or not pq.read_schema(empty).equals(schema):
                tmp = folder / ".000-schema.parquet.tmp"
                pq.write_table(schema.empty_table(), tmp)
                os.replace(tmp, empty)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                con = duckdb.connect(str(self.db_path))
                break
            except duckdb.Error:  # another process holds the file (IOException: could not set lock)
                if time.monotonic() > deadline:
                    if self._views_exist():
                        return
                    raise
                time.sleep(0.5)
        try:
            for name in SCHEMAS:
                con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet("
                            f"'{self.parts / name}/*.parquet', union_by_name = true)")
            for name, body in VIEWS.items():
                con.execute(f"CREATE OR REPLACE VIEW {name} AS {body.format(**{n: n for n in SCHEMAS})}")
        finally:
            con.close()

    def _views_exist(self) -> bool:
        try:
            con = duckdb.connect(str(self.db_path), read_only=True)
        except duckdb.Error:
            return False
        try:
            names = {row[0] for row in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
            return set(VIEWS) | set(SCHEMAS) <= names
        finally:
            con.close()

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
            [pa.repeat(pa.scalar(s.cluster_id, pa.string()), n), _times(pa.repeat(pa.scalar(s.scored_at, pa.float64()), n)),
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
        """Write every buffered row as one new segment per table; returns rows written."""
        with self._lock:
            # Arrow pieces built before anything is taken out of the buffers: if this fails, nothing is lost
            members = [self._member_rows(snapshot) for snapshot in self._latest.values()]
            links = [pa.Table.from_arrays(self._links.columns(_times), schema=SCHEMAS["account_link_rows"])
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
        stamp = f"{int(self.clock() * 1000):015d}-{os.getpid()}"
        # per table: Arrow pieces already built, and buffered Python columns (None without)
        pending = [(name, kept.get(name, []), batches.get(name)) for name in SCHEMAS if name in batches or name in kept]
        try:
            while pending:
                name, tables, cols = pending[0]
                self._seq += 1
                if cols is not None:
                    tables = [*tables, pa.Table.from_arrays(
                        [_column(col, field.type, (name, field.name) in SHARED_TEXT) for col, field in
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
                [_column([self.clock()], TS), pa.array([written], pa.int64()), pa.array([os.getpid()], pa.int64())],
                schema=SCHEMAS["audit_flushes"]), tmp)
            os.replace(tmp, final)
        self.rows_written += written
        return written

    def compact(self, min_segments: int = 2) -> None:
        """Rewrite each table as one segment: superseded versions and rows past retention dropped."""
        horizon = self.retention_days * 86400
        wall = self.clock()
        # Event time ages event-time rows, but never past the wall clock: a forged future timestamp
        # that slipped through must not delete the investigators' history.
        cutoffs = {"wall": _ts(wall - horizon), "event": _ts(min(self.event_time_now, wall) - horizon)}
        con = duckdb.connect()
        try:
            for name in SCHEMAS:
                folder = self.parts / name
                old = sorted(p for p in folder.glob("*.parquet") if p.name != "000-schema.parquet")
                if len(old) < max(2, min_segments):
                    continue
                files = ", ".join(f"'{p}'" for p in old)
                time_col, clock = _time_column(name)
                cutoff = cutoffs[clock]
                keep = f"WHERE ({time_col} IS NULL OR {time_col} >= make_timestamptz({cutoff}))" if cutoff else ""
                if name in ("cluster_member_snapshots", "cluster_evidence_snapshots", "cluster_link_snapshots"):
                    # Only the newest snapshot of each cluster is ever shown.
                    keep += (" AND " if keep else "WHERE ") + (
                        "(cluster_id, snapshot_at) IN (SELECT cluster_id, max(snapshot_at) FROM "
                        f"read_parquet([{files}], union_by_name = true) GROUP BY cluster_id)")
                tmp = folder / ".compacted.tmp"
                con.execute(f"COPY (SELECT DISTINCT * FROM read_parquet([{files}], union_by_name = true) {keep}) "
                            f"TO '{tmp}' (FORMAT parquet, COMPRESSION zstd)")
                os.replace(tmp, folder / f"{old[-1].stem}-c.parquet")
                for path in old:
                    path.unlink()
        finally:
            con.close()


def _time_column(table: str) -> tuple[str, str]:
    """The column retention ages a table by, and whether it holds wall time or event time."""
    return {"alert_versions": ("created_at", "wall"), "alert_member_changes": ("changed_at", "wall"),
            "cluster_snapshots": ("snapshot_at", "event"), "cluster_member_snapshots": ("snapshot_at", "event"),
            "cluster_evidence_snapshots": ("snapshot_at", "event"), "cluster_link_snapshots": ("snapshot_at", "event"),
            "cluster_lineage_rows": ("happened_at", "event"),
            "account_link_rows": ("last_seen", "event"), "verdict_rows": ("decided_at", "wall"),
            "alert_publications": ("published_at", "wall"),
            "audit_flushes": ("flushed_at", "wall")}[table]


def _empty_buffers() -> dict[str, list[list[Any]]]:
    return {name: [[] for _ in schema] for name, schema in SCHEMAS.items()}


def _row(columns: list[list[Any]], *values: Any) -> None:
    for column, value in zip(columns, values, strict=True):
        column.append(value)


SEGMENT_WRITE: dict[str, Any] = {"compression": "zstd", "compression_level": 1, "use_dictionary": False}

# Long JSON texts that consecutive rows share by reference: an alert's evidence (kilobytes) is the same
# object in every membership version until the next score, and those are most versions.
SHARED_TEXT = {("alert_versions", "features"), ("alert_versions", "evidence")}


def _column(values: list[Any], kind: pa.DataType, shared: bool = False) -> pa.Array:
    """One buffered column as Arrow; times are buffered as epoch seconds and converted at once.
    ``shared``: a dictionary array, each distinct object converted once and never expanded (Parquet
    dictionary-encodes strings anyway), not copied once per version."""
    if shared:
        index: dict[int, int] = {}  # id -> position in unique; `values` holds the objects, so ids stay theirs
        unique: list[Any] = []
        positions = []
        for value in values:
            at = index.get(id(value))
            if at is None:
                at = index[id(value)] = len(unique)
                unique.append(value)
            positions.append(at)
        return pa.DictionaryArray.from_arrays(pa.array(positions, pa.int32()), pa.array(unique, kind))
    if kind != TS:
        return pa.array(values, type=kind)
    return _times(pa.array(values, type=pa.float64()))


def _times(seconds: pa.Array) -> pa.Array:
    """Epoch seconds (float64) as the store's timestamps: microseconds; infinite times, e.g. before the
    first event, become null."""
    finite = pc.is_finite(seconds)
    micros = pc.cast(pc.round(pc.multiply(pc.if_else(finite, seconds, 0.0), 1_000_000.0)), pa.int64())
    return pc.if_else(finite, micros, pa.scalar(None, pa.int64())).cast(TS)


def connect_read_only(db_path: str | os.PathLike[str], attempts: int = 20) -> duckdb.DuckDBPyConnection:
    """What investigators' tools do: open read-only, retrying while the views are being rewritten."""
    for attempt in range(attempts):
        try:
            return duckdb.connect(str(db_path), read_only=True)
        except duckdb.IOException:
            if attempt == attempts - 1:
                raise
            time.sleep(0.25)
    raise AssertionError("unreachable")
