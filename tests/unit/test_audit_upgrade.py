"""A store written by an older version (segments without a column added since) still opens: the
worker rewrites each table's empty schema segment with the current columns, and views fill NULLs."""

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from streams.sinks.audit import SCHEMAS, AuditStore


def test_segments_from_an_older_version_still_bind(tmp_path):
    db = tmp_path / "audit.duckdb"
    store = AuditStore(db)
    store.create()
    folder = store.parts / "alert_versions"
    old = pa.schema([f for f in SCHEMAS["alert_versions"] if f.name not in ("requests", "tokens_out")])
    pq.write_table(old.empty_table(), folder / "000-schema.parquet")
    row = {"alert_id": "A-C1", "version": 1, "cluster_id": "C1", "action": "opened", "notify": True,
           "severity": "high", "score": 1.0, "member_count": 5, "reason": "x", "features": "{}", "evidence": "[]"}
    pq.write_table(pa.Table.from_pylist([row], schema=old), folder / "001-old.parquet")
    store.create()
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT alert_id, member_count, requests FROM alerts").fetchall() == [("A-C1", 5, None)]
    finally:
        con.close()
