"""The audit store's tables: one Arrow schema per table, and how buffered Python columns become the
Arrow columns its Parquet segments are written from."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

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

SEGMENT_WRITE: dict[str, Any] = {"compression": "zstd", "compression_level": 1, "use_dictionary": False}

# Long JSON texts that consecutive rows share by reference: an alert's evidence (kilobytes) is the same
# object in every membership version until the next score, and those are most versions.
SHARED_TEXT = {("alert_versions", "features"), ("alert_versions", "evidence")}


def column(values: list[Any], kind: pa.DataType, shared: bool = False) -> pa.Array:
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
    return times(pa.array(values, type=pa.float64()))


def times(seconds: pa.Array) -> pa.Array:
    """Epoch seconds (float64) as the store's timestamps: microseconds; infinite times, e.g. before the
    first event, become null."""
    finite = pc.is_finite(seconds)
    micros = pc.cast(pc.round(pc.multiply(pc.if_else(finite, seconds, 0.0), 1_000_000.0)), pa.int64())
    return pc.if_else(finite, micros, pa.scalar(None, pa.int64())).cast(TS)


def micros(seconds: float | None) -> int | None:
    """Epoch seconds to the microseconds pyarrow stores."""
    if seconds is None or seconds in (float("inf"), float("-inf")):
        return None
    return int(round(seconds * 1_000_000))
