"""An operation as a graph file for the investigators' graph tools (``investigate cluster ID --graph
FILE``): GraphML for Cytoscape and yEd, GEXF for Gephi, written by networkx from the audit store.

Nodes, each with ``kind`` and ``label``:

* the operation itself (``kind=operation``: size, severity, score, damage, the one-sentence summary);
* its member accounts (``kind=account``);
* the devices, cards, IPs, templates and derived groups its alerted members are linked to
  (``kind`` = the entity type; ``evidence=true`` and ``members_sharing`` for the entities the
  detector names as the operation's evidence);
* the other operations it shares infrastructure with (``kind=other_operation``).

Edges: account — entity (``last_seen``), and operation — other operation (``entity_type``,
``shared_entities``, ``accounts_here``, ``accounts_there``). The links are those the audit store keeps,
the links behind each alerted member as of the version that added it; an operation never alerted has
members and evidence but no account links. Times are RFC 3339 text (GraphML and GEXF have no time
type); missing values are left out.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import networkx as nx

WRITERS = {".graphml": nx.write_graphml, ".gexf": nx.write_gexf}


class GraphExportError(ValueError):
    """The file cannot be written in a supported format (the message says why)."""


def _attrs(values: dict[str, Any]) -> dict[str, Any]:
    """GraphML and GEXF take str, int, float and bool: times as text, None left out."""
    out = {}
    for key, value in values.items():
        if value is None:
            continue
        out[key] = value.isoformat() if isinstance(value, datetime) else value
    return out


def operation_graph(con: duckdb.DuckDBPyConnection, cluster_id: str) -> nx.Graph:
    row = con.execute("SELECT status, size, requests, tokens_out, score, severity, verdict, born_at, updated_at, "
                      "summary FROM clusters WHERE cluster_id = ?", [cluster_id]).fetchone()
    if row is None:
        raise GraphExportError(f"cluster {cluster_id} not found")
    facts = dict(zip(("status", "size", "requests", "tokens_out", "score", "severity", "verdict", "born_at",
                      "updated_at", "summary"), row, strict=True))
    g = nx.Graph(**_attrs({"cluster_id": cluster_id, **facts}))
    op = f"operation:{cluster_id}"
    g.add_node(op, **_attrs({"kind": "operation", "label": cluster_id, **facts}))
    members = [r[0] for r in con.execute("SELECT account_id FROM cluster_members WHERE cluster_id = ? "
                                         "ORDER BY account_id", [cluster_id]).fetchall()]
    for account in members:
        g.add_node(f"account:{account}", kind="account", label=account, cluster_id=cluster_id)
    links = con.execute("""
        SELECT l.account_id, l.entity_type, l.entity_value, l.last_seen
        FROM account_links l JOIN cluster_members m ON m.account_id = l.account_id AND m.cluster_id = ?
        ORDER BY l.account_id, l.entity_type, l.entity_value""", [cluster_id]).fetchall()
    for account, kind, value, seen in links:
        entity = f"{kind}:{value}"
        if entity not in g:
            g.add_node(entity, kind=kind, label=value)
        g.add_edge(f"account:{account}", entity, **_attrs({"last_seen": seen}))
    evidence = con.execute("SELECT entity_type, entity_value, members_sharing, first_seen, last_seen "
                           "FROM cluster_evidence WHERE cluster_id = ? ORDER BY entity_type, entity_value", [cluster_id]).fetchall()
    for kind, value, sharing, first, last in evidence:
        entity = f"{kind}:{value}"
        if entity not in g:
            g.add_node(entity, kind=kind, label=value)
        g.nodes[entity].update(_attrs({"evidence": True, "members_sharing": sharing, "first_seen": first,
                                       "last_seen": last}))
    shared = con.execute("SELECT other_cluster_id, entity_type, shared_entities, accounts_here, accounts_there "
                         "FROM cluster_links WHERE cluster_id = ? ORDER BY other_cluster_id, entity_type",
                         [cluster_id]).fetchall()
    for other, kind, entities, here, there in shared:
        node = f"operation:{other}"
        g.add_node(node, kind="other_operation", label=other)
        g.add_edge(op, node, entity_type=kind, shared_entities=entities, accounts_here=here, accounts_there=there)
    return g


PAGE = ".html"  # one self-contained page (streams/sinks/audit/page.py)


def check(path: Path) -> None:
    """A path ``write`` or the page can write, or GraphExportError saying why (before anything is read)."""
    if path.suffix.lower() not in (*WRITERS, PAGE):
        raise GraphExportError(f"--graph {path}: write .graphml (Cytoscape, yEd), .gexf (Gephi) or .html (a page to open)")
    if not path.parent.is_dir():
        raise GraphExportError(f"--graph {path}: no such folder {path.parent}")


def write(g: nx.Graph, path: Path) -> None:
    check(path)
    WRITERS[path.suffix.lower()](g, str(path))


def describe(g: nx.Graph) -> str:
    kinds: dict[str, int] = {}
    for _node, kind in g.nodes(data="kind"):
        kinds[kind] = kinds.get(kind, 0) + 1
    entities = sum(n for k, n in kinds.items() if k not in ("operation", "account", "other_operation"))
    return (f"{kinds.get('account', 0):,} accounts, {entities:,} entities, "
            f"{kinds.get('other_operation', 0):,} other operations, {g.number_of_edges():,} edges")
