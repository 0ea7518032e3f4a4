"""The investigators' names over the segments: one DuckDB view per table (``SELECT *`` over its
segment folder) and the views they query (one row per natural key, newest version wins), written into
the DuckDB file at ``--audit-db``; and how investigators' tools open that file."""

from __future__ import annotations

import os
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from streams.sinks.audit.schema import SCHEMAS

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


def create(db_path: Path, parts: Path, wait_seconds: float = 30.0, writer: str = "") -> None:
    """Make the segment folders under ``parts`` and (re)write the views in the DuckDB file ``db_path``.
    If readers keep the file open past ``wait_seconds`` and the views already exist, keep them: they
    only name segment folders. Temporary files a crash left are removed: ``writer``'s own, and any
    older than 10 minutes (not another worker's write in progress, which is seconds old)."""
    for name, schema in SCHEMAS.items():
        folder = parts / name
        folder.mkdir(parents=True, exist_ok=True)
        for leftover in folder.glob(".*.tmp"):  # a flush or compaction a crash interrupted
            try:
                if (writer and (f"-{writer}-" in leftover.name or leftover.name.endswith(f"-{writer}.tmp"))) or time.time() - leftover.stat().st_mtime > 600:
                    leftover.unlink(missing_ok=True)
            except FileNotFoundError:
                pass
        empty = folder / "000-schema.parquet"
        # The empty segment carries the current columns, so views over segments written by an
        # older version (without a column added since) still bind: union_by_name fills NULLs.
        if not empty.exists() or not pq.read_schema(empty).equals(schema):
            # a name of its own: workers sharing the store may start together (each writes the same bytes)
            tmp = folder / f".000-schema-{writer or 'w'}-{os.getpid()}.tmp"
            pq.write_table(schema.empty_table(), tmp)
            os.replace(tmp, empty)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            con = duckdb.connect(str(db_path))
            break
        except duckdb.Error:  # another process holds the file (IOException: could not set lock)
            if time.monotonic() > deadline:
                if views_exist(db_path):
                    return
                raise
            time.sleep(0.5)
    try:
        for name in SCHEMAS:
            con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet("
                        f"'{parts / name}/*.parquet', union_by_name = true)")
        for name, body in VIEWS.items():
            con.execute(f"CREATE OR REPLACE VIEW {name} AS {body.format(**{n: n for n in SCHEMAS})}")
    finally:
        con.close()


def views_exist(db_path: Path) -> bool:
    try:
        con = duckdb.connect(str(db_path), read_only=True)
    except duckdb.Error:
        return False
    try:
        names = {row[0] for row in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
        return set(VIEWS) | set(SCHEMAS) <= names
    finally:
        con.close()


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
