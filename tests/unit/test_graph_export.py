"""`investigate cluster ID --graph FILE`: the operation as GraphML and GEXF, read back by networkx with
its accounts, entities, links and attributes as the audit store holds them."""

from __future__ import annotations

import subprocess
import sys

import duckdb
import networkx as nx
import pytest

from streams.cli import main as cli


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("graph")
    events = tmp / "events.jsonl"
    cli(["simulate", "--benign", "800", "--ring-scale", "0.05", "--days", "3", "--seed", "3", "--out", str(events)])
    db = tmp / "audit.duckdb"
    cli(["replay", str(events), "--audit-db", str(db), "--quiet"])
    con = duckdb.connect(str(db), read_only=True)
    cluster = con.execute("""SELECT c.cluster_id FROM clusters c JOIN alerts a USING (cluster_id)
                             WHERE c.status = 'live' ORDER BY c.size DESC LIMIT 1""").fetchone()[0]
    members = {r[0] for r in con.execute("SELECT account_id FROM cluster_members WHERE cluster_id = ?",
                                         [cluster]).fetchall()}
    links = {(a, f"{k}:{v}") for a, k, v in con.execute(
        "SELECT account_id, entity_type, entity_value FROM account_links").fetchall() if a in members}
    evidence = {f"{k}:{v}" for k, v in con.execute(
        "SELECT entity_type, entity_value FROM cluster_evidence WHERE cluster_id = ?", [cluster]).fetchall()}
    con.close()
    return db, cluster, members, links, evidence


@pytest.mark.parametrize("suffix, read", [(".graphml", nx.read_graphml), (".gexf", nx.read_gexf)])
def test_the_operation_round_trips_through_graphml_and_gexf(store, tmp_path, suffix, read):
    db, cluster, members, links, evidence = store
    path = tmp_path / f"op{suffix}"
    result = subprocess.run([sys.executable, "-m", "streams.cli", "investigate", "cluster", cluster, "--audit-db",
                             str(db), "--graph", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"graph: {path}" in result.stdout
    g = read(str(path))
    kind = nx.get_node_attributes(g, "kind")
    label = nx.get_node_attributes(g, "label")
    assert {label[n] for n in g if kind[n] == "account"} == members and len(members) >= 20
    assert len(links) > 0
    edges = {(label[a], b) for a, b in g.edges if kind[a] == "account"} | \
            {(label[b], a) for a, b in g.edges if kind[b] == "account"}
    assert edges == links
    assert evidence and all(g.nodes[e].get("evidence") in (True, "true", "True") for e in evidence)
    op = g.nodes[f"operation:{cluster}"]
    assert op["kind"] == "operation" and int(op["size"]) == len(members) and op["severity"] in ("low", "medium", "high")


def test_graph_mistakes_get_one_line(store, tmp_path):
    db, cluster, *_ = store
    for args, words in (((cluster, "--graph", str(tmp_path / "op.png")), ".graphml"),
                        ((cluster, "--graph", str(tmp_path / "missing" / "op.gexf")), "no such folder")):
        result = subprocess.run([sys.executable, "-m", "streams.cli", "investigate", "cluster", *args, "--audit-db",
                                 str(db)], capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1 and words in result.stderr
    worst = subprocess.run([sys.executable, "-m", "streams.cli", "investigate", "worst", "--graph", "x.gexf",
                            "--audit-db", str(db)], capture_output=True, text=True, timeout=120)
    assert worst.returncode == 2 and "--graph goes with" in worst.stderr
