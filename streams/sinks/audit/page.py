"""An operation as one self-contained HTML page (``investigate cluster ID --graph FILE.html``): what an
investigator opens to see who shares what, how the operation grew and what it cost.

* **The picture** (inline SVG, laid out here): the operation's *groups* — accounts joined through
  devices, cards or lockstep cohorts, each drawn as one node sized by its accounts — the devices, cards
  and cohorts that bind them most, the templates the operation owns and the IPs and templates several
  groups share (what joined the groups into one operation), and the other operations it shares
  infrastructure with. An operation of 20,000 accounts is drawn as at most
  ``MAX_GROUPS`` groups plus one node for the rest, so it stays legible and small.
* **Size and damage over time**: the cluster's snapshots and its alert versions (accounts, API
  exchanges) as a plot.
* **Lineage**: born, merged, split, expired… as a timeline and a table (growth steps counted, not
  listed).

The page needs nothing at view time: no script, no font, no request — a Content-Security-Policy of
``default-src 'none'`` says so to the browser. Every string that came from an event (account ids,
entity values, summaries) is escaped: an account id of ``<script>…`` is shown as text. Numbers are the
audit store's, as stored; each fact carries its raw value in ``data-value`` for tools and tests.
"""

from __future__ import annotations

import html
import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import networkx as nx

MAX_GROUPS = 40  # groups drawn one by one; the rest are one node
MAX_BINDERS = 60  # binding devices / cards / cohorts drawn
BINDERS_PER_GROUP = 3  # the ones binding most accounts of a group
MAX_SHARED = 20  # IPs and templates drawn: those shared by the most groups
MAX_OTHERS = 12  # other operations listed beside the picture
LABELLED = 12  # groups with their size written beside them
MAX_POINTS = 400  # points per plotted series (evenly thinned, the last always kept)
MAX_LINEAGE_ROWS = 200
MAX_EVIDENCE_ROWS = 25
BINDING = ("device", "payment", "lockstep")  # the kinds that join accounts into groups (the hard evidence)
SHAPES = {"operation": "this operation", "other": "other operation", "device": "device", "payment": "card",
          "lockstep": "lockstep cohort", "owned_template": "owned template", "ip": "IP", "template": "template"}
COLOURS = {"operation": "#222222", "other": "#ffffff", "group": "#3b6ea8", "rest": "#9db6d3", "device": "#c0504d",
           "payment": "#e0a030", "lockstep": "#8064a2", "owned_template": "#4bacc6", "ip": "#7f7f7f",
           "template": "#a5a5a5"}
FACTS = ("status", "severity", "score", "size", "requests", "tokens_out", "verdict", "born_at", "updated_at")


@dataclass
class OperationData:
    cluster_id: str
    facts: dict[str, Any]
    members: list[str]
    links: list[tuple[str, str, str]]  # account, entity type, entity value
    evidence: list[tuple[str, str, int]]  # entity type, value, members sharing
    shared: list[tuple[str, str, int, int, int]]  # other cluster, entity type, entities, accounts here, there
    series: list[tuple[datetime, int, int]]  # time, accounts, API exchanges
    lineage: list[tuple[datetime, str, str, int, str | None]]  # time, cluster, kind, size, other cluster


class PageError(ValueError):
    """The operation cannot be drawn (the message says why)."""


def read(con: duckdb.DuckDBPyConnection, cluster_id: str) -> OperationData:
    row = con.execute(f"SELECT {', '.join(FACTS)}, summary FROM clusters WHERE cluster_id = ?", [cluster_id]).fetchone()
    if row is None:
        raise PageError(f"cluster {cluster_id} not found")
    facts = dict(zip((*FACTS, "summary"), row, strict=True))
    members = [r[0] for r in con.execute("SELECT account_id FROM cluster_members WHERE cluster_id = ? ORDER BY 1",
                                         [cluster_id]).fetchall()]
    links = con.execute("""
        SELECT l.account_id, l.entity_type, l.entity_value
        FROM account_links l JOIN cluster_members m ON m.account_id = l.account_id AND m.cluster_id = ?
        ORDER BY 1, 2, 3""", [cluster_id]).fetchall()
    evidence = con.execute("SELECT entity_type, entity_value, members_sharing FROM cluster_evidence "
                           "WHERE cluster_id = ? ORDER BY 3 DESC, 1, 2", [cluster_id]).fetchall()
    shared = con.execute("SELECT other_cluster_id, entity_type, shared_entities, accounts_here, accounts_there "
                         "FROM cluster_links WHERE cluster_id = ? ORDER BY 3 DESC, 1, 2", [cluster_id]).fetchall()
    series = con.execute("""
        SELECT t, max(accounts), max(exchanges) FROM (
            SELECT snapshot_at AS t, size AS accounts, requests AS exchanges FROM cluster_snapshots WHERE cluster_id = ?
            UNION ALL
            SELECT alerted_at, member_count, requests FROM alert_history WHERE cluster_id = ?)
        WHERE t IS NOT NULL GROUP BY t ORDER BY t""", [cluster_id, cluster_id]).fetchall()
    lineage = con.execute("SELECT happened_at, cluster_id, kind, size, other_cluster_id FROM cluster_lineage "
                          "WHERE cluster_id = ? OR other_cluster_id = ? ORDER BY 1, 3, 2", [cluster_id, cluster_id]).fetchall()
    return OperationData(cluster_id, facts, members, links, evidence, shared,
                         [(t, int(n or 0), int(x or 0)) for t, n, x in series], lineage)


# -- the picture ----------------------------------------------------------------------------------
@dataclass
class Picture:
    graph: nx.Graph
    groups: int  # groups of two or more accounts
    loose: int  # accounts in no group (joined through IPs and templates only)
    positions: dict[str, tuple[float, float]] = field(default_factory=dict)


def groups_of(members: list[str], links: list[tuple[str, str, str]]) -> list[list[str]]:
    """Accounts joined through a device, card or cohort that two or more of them use, largest first
    (ties: by smallest account id); accounts in no group come last, one list each."""
    parent = {a: a for a in members}

    def find(a: str) -> str:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    users: dict[tuple[str, str], list[str]] = defaultdict(list)
    for account, kind, value in links:
        if kind in BINDING and account in parent:
            users[(kind, value)].append(account)
    for accounts in users.values():
        root = find(accounts[0])
        for other in accounts[1:]:
            r = find(other)
            if r != root:
                parent[max(r, root)] = min(r, root)
                root = min(r, root)
    out: dict[str, list[str]] = defaultdict(list)
    for a in members:
        out[find(a)].append(a)
    return sorted(out.values(), key=lambda g: (-len(g), g[0]))


def picture(data: OperationData) -> Picture:
    """The operation at the centre; its groups around it (the largest ``MAX_GROUPS`` one by one, the
    rest and the accounts in no group as one node each), each with the devices, cards and cohorts that
    bind it most; the owned templates, IPs and templates that several groups share (what joined the
    groups into one operation); and the other operations it shares infrastructure with."""
    groups = groups_of(data.members, data.links)
    joined = [g for g in groups if len(g) > 1]
    loose = sum(1 for g in groups if len(g) == 1)
    node_of: dict[str, str] = {}
    g = nx.Graph()
    centre = f"operation:{data.cluster_id}"
    g.add_node(centre, kind="operation", accounts=len(data.members), label=data.cluster_id, sample=[])
    for i, accounts in enumerate(joined[:MAX_GROUPS]):
        node = f"group:{i:03d}"
        g.add_node(node, kind="group", accounts=len(accounts), label=f"{len(accounts):,} accounts", sample=accounts[:5])
        node_of.update((a, node) for a in accounts)
    rest = joined[MAX_GROUPS:]
    if rest:
        n = sum(map(len, rest))
        g.add_node("group:rest", kind="rest", accounts=n, label=f"{len(rest):,} more groups, {n:,} accounts", sample=[])
        node_of.update((a, "group:rest") for accounts in rest for a in accounts)
    if loose:
        g.add_node("group:loose", kind="rest", accounts=loose, sample=[],
                   label=f"{loose:,} accounts in no group")
        node_of.update((accounts[0], "group:loose") for accounts in groups if len(accounts) == 1)
    for node in [n for n in g if n != centre]:
        g.add_edge(centre, node, weight=g.nodes[node]["accounts"], style="member")
    per_entity: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for account, kind, value in data.links:
        if account in node_of:
            per_entity[(kind, value)][node_of[account]] += 1
    users = {e: sum(where.values()) for e, where in per_entity.items()}
    binders: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for e in sorted((e for e in per_entity if e[0] in BINDING and users[e] > 1), key=lambda e: (-users[e], e)):
        home = min(per_entity[e], key=lambda n: (-per_entity[e][n], n))
        if len(binders[home]) < BINDERS_PER_GROUP and sum(map(len, binders.values())) < MAX_BINDERS:
            binders[home].append(e)
    owned = {v for k, v in per_entity if k == "owned_template"}
    spanning = sorted((e for e in per_entity if e[0] not in BINDING and len(per_entity[e]) > 1
                       and not (e[0] == "template" and e[1] in owned)),  # an owned template is drawn once, as owned
                      key=lambda e: (e[0] != "owned_template", -len(per_entity[e]), -users[e], e))[:MAX_SHARED]
    for kind, value in [e for home in sorted(binders) for e in binders[home]] + spanning:
        node = f"{kind}:{value}"
        g.add_node(node, kind=kind, accounts=users[(kind, value)], sample=[],
                   label=f"{SHAPES.get(kind, kind)} {value} ({users[(kind, value)]:,} accounts)")
        for target, n in sorted(per_entity[(kind, value)].items()):
            g.add_edge(node, target, weight=n, style="link")
    for other, kind, n, here, there in data.shared[:MAX_OTHERS]:
        node = f"other:{other}"
        if node not in g:
            g.add_node(node, kind="other", accounts=0, sample=[], label=f"operation {other}")
        g.nodes[node]["label"] += f"; {n:,} {SHAPES.get(kind, kind)}s shared ({here:,} accounts here, {there:,} there)"
        g.add_edge(centre, node, weight=1, style="shared")
    return Picture(g, len(joined), loose, layout(g))


def layout(g: nx.Graph, rounds: int = 150) -> dict[str, tuple[float, float]]:
    """Fruchterman–Reingold on the (at most ~90) drawn nodes, from a circle in node-name order: the same
    graph gives the same picture in any process (no random start, no numpy)."""
    nodes = sorted(g.nodes)
    n = len(nodes)
    if n == 0:
        return {}
    pos = {v: [math.cos(2 * math.pi * i / n), math.sin(2 * math.pi * i / n)] for i, v in enumerate(nodes)}
    k = math.sqrt(4.0 / n)
    temperature = 0.2
    edges = sorted(g.edges)
    for _ in range(rounds):
        move = {v: [0.0, 0.0] for v in nodes}
        for i, a in enumerate(nodes):
            ax, ay = pos[a]
            for b in nodes[i + 1:]:
                dx, dy = ax - pos[b][0], ay - pos[b][1]
                d2 = max(dx * dx + dy * dy, 1e-6)
                f = k * k / d2  # repulsion k^2/d, along the unit vector (dx, dy)/d
                move[a][0] += dx * f
                move[a][1] += dy * f
                move[b][0] -= dx * f
                move[b][1] -= dy * f
        for a, b in edges:
            dx, dy = pos[a][0] - pos[b][0], pos[a][1] - pos[b][1]
            d = max(math.hypot(dx, dy), 1e-3)
            f = d / k  # attraction d^2/k
            move[a][0] -= dx * f
            move[a][1] -= dy * f
            move[b][0] += dx * f
            move[b][1] += dy * f
        for v in nodes:
            mx, my = move[v]
            m = math.hypot(mx, my)
            if m > 0:
                step = min(m, temperature)
                pos[v][0] += mx / m * step
                pos[v][1] += my / m * step
        temperature *= 0.97
    return {v: (x, y) for v, (x, y) in pos.items()}


# -- rendering ------------------------------------------------------------------------------------
def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return str(value)


def _raw(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return "" if value is None else str(value)


W, H, PAD = 900, 620, 40


def _svg_picture(p: Picture) -> str:
    if not len(p.graph):
        return "<p>No links of this operation's accounts are in the store (an operation never alerted has none).</p>"
    xs = [x for x, _ in p.positions.values()]
    ys = [y for _, y in p.positions.values()]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)

    def at(node: str) -> tuple[float, float]:
        x, y = p.positions[node]
        return (PAD + (x - x0) / ((x1 - x0) or 1) * (W - 2 * PAD), PAD + (y - y0) / ((y1 - y0) or 1) * (H - 2 * PAD))

    biggest = max(d["accounts"] for n, d in p.graph.nodes(data=True) if d["kind"] != "operation") or 1
    out = [f'<svg id="picture" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
           f'aria-label="the operation\'s groups and what binds them">']
    strokes = {"member": ' stroke="#e4e4e4" stroke-width="1"', "shared": ' stroke="#c62828" stroke-dasharray="5,4" stroke-width="1.5"'}
    for a, b, d in sorted(p.graph.edges(data=True)):
        (ax, ay), (bx, by) = at(a), at(b)
        stroke = strokes.get(d["style"], f' stroke="#aaa" stroke-width="{0.6 + 2.5 * math.sqrt(d["weight"] / biggest):.2f}"')
        out.append(f'<line x1="{ax:.1f}" y1="{ay:.1f}" x2="{bx:.1f}" y2="{by:.1f}"{stroke}/>')
    order = {"operation": 0, "group": 1, "rest": 1, "other": 2}
    for node, d in sorted(p.graph.nodes(data=True), key=lambda nd: (order.get(nd[1]["kind"], 3), nd[0])):
        x, y = at(node)
        kind = d["kind"]
        colour = COLOURS.get(kind, "#999")
        title = esc(d["label"]) + "".join(f"&#10;{esc(a)}" for a in d["sample"])
        if kind in ("group", "rest", "operation", "other"):
            r = {"operation": 7, "other": 9}.get(kind) or 5 + 28 * math.sqrt(d["accounts"] / biggest)
            out.append(f'<circle class="node {kind}" cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="{colour}" '
                       f'stroke="{"#c62828" if kind == "other" else "none"}" stroke-width="2" fill-opacity="0.85">'
                       f'<title>{title}</title></circle>')
            if kind != "group" or node < f"group:{LABELLED:03d}":  # the largest groups are named, the rest hover
                label = d["label"] if kind != "other" else node.split(":", 1)[1]
                out.append(f'<text x="{x:.1f}" y="{y + r + 11:.1f}" text-anchor="middle" class="label">{esc(label)}</text>')
        else:
            s = 4 + 6 * math.sqrt(min(1.0, d["accounts"] / biggest))
            if kind in ("device", "ip"):
                shape = f'<rect x="{x - s:.1f}" y="{y - s:.1f}" width="{2 * s:.1f}" height="{2 * s:.1f}"'
                close = "</rect>"
            else:
                shape = f'<polygon points="{x:.1f},{y - s:.1f} {x + s:.1f},{y:.1f} {x:.1f},{y + s:.1f} {x - s:.1f},{y:.1f}"'
                close = "</polygon>"
            out.append(f'{shape} class="node {kind}" fill="{colour}"><title>{title}</title>{close}')
    out.append("</svg>")
    return "".join(out)


def _thin(points: list[tuple[datetime, int, int]]) -> list[tuple[datetime, int, int]]:
    if len(points) <= MAX_POINTS:
        return points
    step = len(points) / (MAX_POINTS - 1)
    return [points[int(i * step)] for i in range(MAX_POINTS - 1)] + [points[-1]]


def _svg_plot(series: list[tuple[datetime, int, int]]) -> str:
    if not series:
        return "<p>No snapshots of this operation in the store.</p>"
    pts = _thin(series)
    w, h, pad = 900, 260, 55
    t0, t1 = pts[0][0].timestamp(), pts[-1][0].timestamp()
    top_n = max(p[1] for p in pts) or 1
    top_x = max(p[2] for p in pts) or 1

    def line(i: int, top: int, colour: str, name: str) -> str:
        xy = " ".join(f"{pad + (t.timestamp() - t0) / ((t1 - t0) or 1) * (w - 2 * pad):.1f},"
                      f"{h - pad - (n if i == 1 else x) / top * (h - 2 * pad):.1f}" for t, n, x in pts)
        return f'<polyline class="series {name}" points="{xy}" fill="none" stroke="{colour}" stroke-width="2"/>'

    return (f'<svg id="plot" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="size and damage over time">'
            f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#444"/>'
            f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{h - pad}" stroke="#3b6ea8"/>'
            f'<line x1="{w - pad}" y1="{pad}" x2="{w - pad}" y2="{h - pad}" stroke="#c0504d"/>'
            + line(1, top_n, "#3b6ea8", "accounts") + line(2, top_x, "#c0504d", "exchanges")
            + f'<text x="{pad}" y="{pad - 8}" class="axis" fill="#3b6ea8">{top_n:,} accounts</text>'
            f'<text x="{w - pad}" y="{pad - 8}" class="axis" text-anchor="end" fill="#c0504d">{top_x:,} API exchanges</text>'
            f'<text x="{pad}" y="{h - pad + 18}" class="axis">{esc(_fmt(pts[0][0]))}</text>'
            f'<text x="{w - pad}" y="{h - pad + 18}" class="axis" text-anchor="end">{esc(_fmt(pts[-1][0]))}</text>'
            "</svg>")


STEPS = ("grew", "shrank")


def _lineage(data: OperationData) -> str:
    rows = data.lineage
    if not rows:
        return "<p>No lineage rows.</p>"
    steps = {k: sum(1 for r in rows if r[2] == k and r[1] == data.cluster_id) for k in STEPS}
    events = [r for r in rows if r[2] not in STEPS or r[1] != data.cluster_id]
    t0, t1 = rows[0][0].timestamp(), rows[-1][0].timestamp()
    w, pad = 900, 40
    marks = "".join(
        f'<circle cx="{pad + (r[0].timestamp() - t0) / ((t1 - t0) or 1) * (w - 2 * pad):.1f}" cy="20" r="5" '
        f'class="event {esc(r[2])}"><title>{esc(_fmt(r[0]))}: {esc(r[1])} {esc(r[2])} {esc(r[4] or "")} '
        f'({r[3]:,} accounts)</title></circle>' for r in events)
    strip = (f'<svg id="timeline" viewBox="0 0 {w} 50" width="{w}" height="50" role="img" aria-label="lineage">'
             f'<line x1="{pad}" y1="20" x2="{w - pad}" y2="20" stroke="#444"/>{marks}'
             f'<text x="{pad}" y="45" class="axis">{esc(_fmt(rows[0][0]))}</text>'
             f'<text x="{w - pad}" y="45" class="axis" text-anchor="end">{esc(_fmt(rows[-1][0]))}</text></svg>')
    counted = ", ".join(f"{k} {n:,} times" for k, n in steps.items() if n)
    table = "".join(f"<tr><td>{esc(_fmt(r[0]))}</td><td>{esc(r[1])}</td><td>{esc(r[2])}</td><td>{r[3]:,}</td>"
                    f"<td>{esc(r[4] or '')}</td></tr>" for r in events[:MAX_LINEAGE_ROWS])
    more = f"<p>… and {len(events) - MAX_LINEAGE_ROWS:,} more rows (the cluster_lineage view has them all).</p>" \
        if len(events) > MAX_LINEAGE_ROWS else ""
    return (strip + (f"<p>Besides these, {esc(data.cluster_id)} {counted}.</p>" if counted else "")
            + "<table id=\"lineage\"><tr><th>when</th><th>cluster</th><th>what</th><th>accounts</th><th>other</th></tr>"
            + table + "</table>" + more)


CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:960px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}.why{font-size:15px;margin:6px 0 14px}
dl{display:grid;grid-template-columns:repeat(3,auto 1fr);gap:4px 12px;margin:0}dt{color:#666}dd{margin:0;font-weight:600}
svg{border:1px solid #ddd;background:#fcfcfc;max-width:100%;height:auto}text.label{font-size:10px;fill:#333}
text.axis{font-size:11px}table{border-collapse:collapse;font-size:12px}td,th{border-bottom:1px solid #eee;padding:2px 8px;text-align:left}
.legend span{display:inline-block;margin-right:14px}.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}
circle.event{fill:#8064a2}circle.event.born{fill:#2e7d32}circle.event.expired,circle.event.merged_into{fill:#c62828}"""


def render(data: OperationData) -> str:
    p = picture(data)
    f = data.facts
    facts = "".join(f'<dt>{esc(k.replace("_", " "))}</dt><dd id="fact-{k}" data-value="{esc(_raw(f[k]))}">'
                    f"{esc(_fmt(f[k]))}</dd>" for k in FACTS)
    legend = "".join(f'<span><i style="background:{c};border:1px solid {"#c62828" if k == "other" else c}"></i>{esc(SHAPES.get(k, k if k != "rest" else "aggregated"))}</span>'
                     for k, c in COLOURS.items())
    others = "".join(f"<tr><td>{esc(o)}</td><td>{esc(k)}</td><td>{n:,}</td><td>{here:,}</td><td>{there:,}</td></tr>"
                     for o, k, n, here, there in data.shared[:MAX_OTHERS])
    evidence = "".join(f"<tr><td>{esc(SHAPES.get(k, k))}</td><td>{esc(v)}</td><td>{n:,}</td></tr>"
                       for k, v, n in data.evidence[:MAX_EVIDENCE_ROWS])
    if len(data.evidence) > MAX_EVIDENCE_ROWS:
        evidence += (f"<tr><td colspan='3'>… and {len(data.evidence) - MAX_EVIDENCE_ROWS:,} more (the cluster_evidence "
                     "view has them all)</td></tr>")
    cid = esc(data.cluster_id)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Operation {cid}</title><style>{CSS}</style></head>
<body data-cluster="{cid}">
<h1>Operation {cid}</h1>
<p class="why" id="summary">{esc(f.get("summary") or "")}</p>
<dl id="facts">{facts}</dl>
<h2>Who shares what</h2>
<p>{p.groups:,} groups of accounts joined by devices, cards or lockstep cohorts
{f"(the {MAX_GROUPS} largest drawn one by one)" if p.groups > MAX_GROUPS else ""}{f"; {p.loose:,} accounts share no device, card or cohort with another member" if p.loose else ""}.
The templates it owns and the IPs and templates several groups share are what joined them into one operation.
Circles: groups, sized by accounts; squares: devices and IPs; diamonds: cards, cohorts and templates.
Hover for names.</p>
<div class="legend">{legend}</div>
{_svg_picture(p)}
<h2>Operations it shares infrastructure with (weighed, never joined)</h2>
{"<table id='shared'><tr><th>operation</th><th>entity type</th><th>shared entities</th><th>accounts here</th><th>accounts there</th></tr>" + others + "</table>" if others else "<p>None.</p>"}
<h2>Evidence</h2>
{"<table id='evidence'><tr><th>kind</th><th>value</th><th>members sharing</th></tr>" + evidence + "</table>" if evidence else "<p>None recorded.</p>"}
<h2>Size and damage over time</h2>
{_svg_plot(data.series)}
<h2>Lineage</h2>
{_lineage(data)}
<p class="axis">Written from the audit store; the numbers are its own (API exchanges and output tokens within the window, as of the latest tick).</p>
</body></html>
"""


def describe(data: OperationData) -> str:
    return f"{len(data.members):,} accounts, {len(data.series):,} points over time, {len(data.lineage):,} lineage rows"


def write(con: duckdb.DuckDBPyConnection, cluster_id: str, path: str) -> OperationData:
    data = read(con, cluster_id)
    with open(path, "w", encoding="utf-8") as out:
        out.write(render(data))
    return data
