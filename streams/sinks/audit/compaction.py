"""Compaction: each table's segments rewritten as one, superseded snapshots and rows past retention
dropped. Wall-time rows (versions, verdicts, publications) age by the wall clock, event-time rows
(snapshots, lineage, links) by the newest watermark, never past the wall clock."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from streams.sinks.audit.schema import SCHEMAS, micros

def compact(parts: Path, retention_days: float, wall: float, event_time_now: float, min_segments: int = 2,
            writer: str = "w") -> None:
    """Rewrite each table's segments as one: superseded versions and rows past retention dropped. It
    folds the segments present when it starts, whoever wrote them (other workers go on adding theirs
    meanwhile, and a segment is renamed into place whole), and removes exactly those."""
    horizon = retention_days * 86400
    # Event time ages event-time rows, but never past the wall clock: a forged future timestamp
    # that slipped through must not delete the investigators' history.
    cutoffs = {"wall": micros(wall - horizon), "event": micros(min(event_time_now, wall) - horizon)}
    con = duckdb.connect()
    try:
        for name in SCHEMAS:
            folder = parts / name
            old = sorted(p for p in folder.glob("*.parquet") if p.name != "000-schema.parquet")
            if len(old) < max(2, min_segments):
                continue
            files = ", ".join(f"'{p}'" for p in old)
            time_col, clock = time_column(name)
            cutoff = cutoffs[clock]
            keep = f"WHERE ({time_col} IS NULL OR {time_col} >= make_timestamptz({cutoff}))" if cutoff else ""
            if name in ("cluster_member_snapshots", "cluster_evidence_snapshots", "cluster_link_snapshots"):
                # Only the newest snapshot of each cluster is ever shown.
                keep += (" AND " if keep else "WHERE ") + (
                    "(cluster_id, snapshot_at) IN (SELECT cluster_id, max(snapshot_at) FROM "
                    f"read_parquet([{files}], union_by_name = true) GROUP BY cluster_id)")
            tmp = folder / f".compacted-{writer}.tmp"
            con.execute(f"COPY (SELECT DISTINCT * FROM read_parquet([{files}], union_by_name = true) {keep}) "
                        f"TO '{tmp}' (FORMAT parquet, COMPRESSION zstd)")
            os.replace(tmp, folder / f"{old[-1].stem}-{writer}-c.parquet")
            for path in old:
                path.unlink(missing_ok=True)  # a compaction racing this one (a handover of stage B) took it
    finally:
        con.close()




def time_column(table: str) -> tuple[str, str]:
    """The column retention ages a table by, and whether it holds wall time or event time."""
    return {"alert_versions": ("created_at", "wall"), "alert_member_changes": ("changed_at", "wall"),
            "cluster_snapshots": ("snapshot_at", "event"), "cluster_member_snapshots": ("snapshot_at", "event"),
            "cluster_evidence_snapshots": ("snapshot_at", "event"), "cluster_link_snapshots": ("snapshot_at", "event"),
            "cluster_lineage_rows": ("happened_at", "event"),
            "account_link_rows": ("last_seen", "event"), "verdict_rows": ("decided_at", "wall"),
            "alert_publications": ("published_at", "wall"),
            "audit_flushes": ("flushed_at", "wall")}[table]
