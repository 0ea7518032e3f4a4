"""The links behind an alert reach the audit store as the kernel's column buffers: the rows must be
exactly ``links_of``'s, across several alert updates (the buffers' bases), renamed when pseudonymised,
and kept by a flush that fails."""

import duckdb
import pytest

from streams.sinks.audit import AuditStore
from streams.sinks.link_rows import LinkRows, RenamedLinks
from streams.runtime.pseudonyms import Pseudonymiser

from tests.conftest import run, small_config
from tests.unit.scenarios import farm


@pytest.fixture(scope="module")
def graph():
    engine, _ = run(sorted(farm("f", 30, devices=5) + farm("g", 20, devices=4), key=lambda e: e.ts), small_config())
    return engine.detector.graph


def expected(graph, cluster_and_accounts, rename=lambda kind, value: value):
    rows = []
    for cluster, accounts in cluster_and_accounts:
        for account in accounts:
            for kind, value, seen in graph.links_of(account):
                rows.append((account, kind, rename(kind, value), float(seen), cluster))
    return rows


def as_rows(links: LinkRows):
    columns = links.columns(lambda seconds: seconds)  # keep epoch seconds to compare
    return list(zip(*(c.to_pylist() for c in columns), strict=True))


def test_rows_over_several_updates_are_links_of_each_account(graph):
    updates = [("c-1", ["f0", "f1", "nobody"]), ("c-2", ["g3"]), ("c-1", ["f7", "f0"])]
    links = LinkRows()
    for cluster, accounts in updates:
        links.add(graph, cluster, accounts)
    want = expected(graph, updates)
    assert len(want) > 20 and {r[1] for r in want} >= {"device", "ip"}
    assert as_rows(links) == want
    assert len(links) == len(want)


def test_renamed_links_rename_values_and_keep_the_rest(graph):
    pseudonymiser = Pseudonymiser(b"k" * 32)
    updates = [("c-1", ["f2", "f3"]), ("c-2", ["g0", "g1"])]
    links = LinkRows()
    for cluster, accounts in updates:
        links.add(RenamedLinks(graph, pseudonymiser.value), cluster, accounts)
    got = as_rows(links)
    assert got == expected(graph, updates, pseudonymiser.value)
    assert got != expected(graph, updates), "raw device ids and IPs are renamed"


def test_a_failed_flush_keeps_the_link_rows_for_the_next(graph, tmp_path, monkeypatch):
    from graph.alerts import AlertUpdate
    from graph.engine import EngineOutput

    store = AuditStore(tmp_path / "audit.duckdb")
    store.create()
    update = AlertUpdate(alert_id="a-1", version=1, cluster_id="c-1", action="opened", notify=True, severity="high",
                         score=0.9, member_count=2, detected_at=1.0, alerted_at=1.0, created_at=1.0, reason="test",
                         features={}, evidence=(), members_added=("f0", "f1"), members_removed=())
    store.add_links(graph, "c-1", ["f0", "f1"])
    store.add_output(EngineOutput(alerts=[update]))
    want = len(expected(graph, [("c-1", ["f0", "f1"])]))
    assert store.pending() == want + 3  # the link rows, the alert version and its two member rows

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("streams.sinks.audit.writer.pq.write_table", broken)
    with pytest.raises(OSError):
        store.flush()
    assert store.pending() == want + 3, "nothing lost"
    monkeypatch.undo()
    assert store.flush() == want + 3
    con = duckdb.connect(str(tmp_path / "audit.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM account_link_rows").fetchone() == (want,)
        assert con.execute("SELECT count(*) FROM alert_history").fetchone() == (1,)
    finally:
        con.close()


def test_links_are_read_at_the_alerts_tick_from_the_graph_that_holds_stage_b(tmp_path):
    """The engine hands the audit store an alert's new members' links at that tick, from the graph that
    holds stage B now: also after this worker forgot stage B and started it again (a new graph)."""
    from graph import DetectionEngine
    from streams.runtime.pipeline import Pipeline

    engine = DetectionEngine(small_config(), clock=lambda: 0.0, split=True)  # stage B apart, as between workers
    store = AuditStore(tmp_path / "audit.duckdb", clock=lambda: 0.0)
    store.create()
    Pipeline(engine, store, wall=lambda: 0.0)  # wires the engine's link capture to the store
    engine.reset_global()  # another worker held stage B for a while; it starts again here
    record = engine.detector.capture_links
    assert record is not None, "the new stage B still records the links behind alerts"
    seen = []  # the links of each alert's new members, as the graph had them at the capture

    def spy(graph, cluster, accounts):
        assert graph is engine.detector.graph
        seen.extend((a, kind, value, float(at), cluster) for a in accounts for kind, value, at in graph.links_of(a))
        record(graph, cluster, accounts)

    engine.detector.capture_links = spy
    events = sorted(farm("f", 30, devices=5), key=lambda e: e.ts)
    for i in range(0, len(events), 7):
        engine.process(events[i:i + 7])
    engine.flush()
    store.flush()
    con = duckdb.connect(str(tmp_path / "audit.duckdb"), read_only=True)
    try:
        got = con.execute("SELECT account_id, entity_type, entity_value, epoch(last_seen), cluster_id "
                          "FROM account_link_rows").fetchall()
    finally:
        con.close()
    assert len(seen) > 20 and sorted(got) == sorted(seen)
