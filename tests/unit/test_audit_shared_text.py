"""Alert versions between two scores share the score's features and evidence objects; the audit store
writes such a column from a dictionary of the distinct texts. The rows read back must be exactly the
versions' own, as plain strings to DuckDB and to pyarrow."""

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from graph.alerts import AlertUpdate
from graph.engine import EngineOutput
from streams.sinks.audit import AuditStore


def version(n: int, features: dict[str, float], evidence: str) -> AlertUpdate:
    return AlertUpdate(alert_id="A-C0000001", version=n, cluster_id="C0000001", action="members", notify=False,
                       severity="high", score=0.9, member_count=100 + n, detected_at=1.0, alerted_at=float(n),
                       created_at=float(n), reason="membership changed", features=features, evidence=(),
                       members_added=(), members_removed=(), evidence_json=evidence)


def test_versions_sharing_texts_read_back_as_their_own(tmp_path):
    store = AuditStore(tmp_path / "audit.duckdb")
    store.create()
    first_f, second_f = {"mesh": 0.9, "size": 100.0}, {"mesh": 0.5, "size": 120.0}
    first_e, second_e = '[{"entity_type":"device","entity_value":"d1"}]', "[]"
    shared = [(first_f, first_e)] * 3 + [(second_f, second_e)] * 2 + [(dict(first_f), first_e[:])]
    store.add_output(EngineOutput(alerts=[version(n, f, e) for n, (f, e) in enumerate(shared, start=1)]))
    store.flush()
    con = duckdb.connect(str(tmp_path / "audit.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT version, features, evidence, typeof(evidence) FROM alert_history ORDER BY version").fetchall()
    finally:
        con.close()
    assert [(v, e, t) for v, _, e, t in rows] == [(n, e, "VARCHAR") for n, (_, e) in enumerate(shared, start=1)]
    assert [f for _, f, _, _ in rows] == ['{"mesh":0.9,"size":100.0}'] * 3 + ['{"mesh":0.5,"size":120.0}'] * 2 \
        + ['{"mesh":0.9,"size":100.0}']
    (segment,) = [p for p in (store.parts / "alert_versions").glob("*.parquet") if p.name != "000-schema.parquet"]
    table = pq.read_table(segment)
    assert table.schema.field("evidence").type == pa.string() and table.schema.field("features").type == pa.string()
    assert table.column("evidence").to_pylist() == [e for _, e in shared]
