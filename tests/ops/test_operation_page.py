"""`investigate cluster ID --graph FILE.html`: one self-contained page per operation, opened in a real
headless browser (Debian's Chromium, installed by .ci/setup): it loads without errors and without a
single request, the numbers on it are the audit store's, strings from events render as text, and the
screenshot is kept (``$FRAUDGRAPH_ARTIFACTS``, default ``.ci/artifacts``)."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import orjson
import pytest

from streams.cli import main as cli
from streams.sinks.audit import page as operation_page

HOSTILE = ["<script>alert(1)</script>", "\"><img src=x onerror=alert(2)>", "</svg><script>alert(3)</script>"]
ARTIFACTS = Path(os.environ.get("FRAUDGRAPH_ARTIFACTS", Path(__file__).resolve().parents[2] / ".ci" / "artifacts"))


def _replay(events: Path, db: Path) -> None:
    assert cli(["replay", str(events), "--audit-db", str(db), "--quiet"]) == 0


def _top(db: Path) -> str:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("""SELECT c.cluster_id FROM clusters c JOIN alerts a USING (cluster_id)
                              WHERE c.status = 'live' ORDER BY c.size DESC, c.cluster_id LIMIT 1""").fetchone()[0]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A replayed store whose largest operation has three members named like markup and a device whose
    value is markup: the names an attacker chooses are the names the page shows."""
    tmp = tmp_path_factory.mktemp("page")
    events = tmp / "events.jsonl"
    cli(["simulate", "--benign", "800", "--ring-scale", "0.05", "--days", "3", "--seed", "3", "--out", str(events)])
    first = tmp / "first.duckdb"
    _replay(events, first)
    with duckdb.connect(str(first), read_only=True) as con:
        members = [r[0] for r in con.execute("SELECT account_id FROM cluster_members WHERE cluster_id = ? ORDER BY 1",
                                             [_top(first)]).fetchall()]
    renamed = dict(zip(members[:3], HOSTILE, strict=True))
    device = None
    hostile_events = tmp / "hostile.jsonl"
    with open(events, "rb") as src, open(hostile_events, "wb") as out:
        for line in src:
            e = orjson.loads(line)
            if e["account_id"] in renamed:
                if device is None and e.get("device_id"):
                    device = e["device_id"]
                e["account_id"] = renamed[e["account_id"]]
            if device is not None and e.get("device_id") == device:
                e["device_id"] = "<b onmouseover=alert(4)>dev</b>"
            out.write(orjson.dumps(e) + b"\n")
    db = tmp / "audit.duckdb"
    _replay(hostile_events, db)
    cluster = _top(db)
    page = tmp / f"{cluster}.html"
    result = subprocess.run([sys.executable, "-m", "streams.cli", "investigate", "cluster", cluster, "--audit-db", str(db),
                             "--graph", str(page)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"page: {page}" in result.stdout
    return db, cluster, page


def test_strings_from_events_are_text_not_markup(store):
    db, cluster, page = store
    text = page.read_text()
    with duckdb.connect(str(db), read_only=True) as con:
        members = {r[0] for r in con.execute("SELECT account_id FROM cluster_members WHERE cluster_id = ?", [cluster]).fetchall()}
    shown = [h for h in HOSTILE if h in members]
    assert shown, "the hostile accounts must be members of the drawn operation"
    assert "<script" not in text.lower() and "onerror=" not in text.replace("onerror=alert(2)&gt;", "")
    assert "<img" not in text and "<b " not in text
    # each hostile member is named on the page (a group's sample or the evidence), escaped
    data = operation_page.read(duckdb.connect(str(db), read_only=True), cluster)
    page_text = operation_page.render(data)
    assert page_text == text  # the page is a function of the store
    assert any(html.escape(h, quote=True) in text for h in shown)


def test_the_page_is_a_function_of_the_store(store, tmp_path):
    db, cluster, page = store
    again = tmp_path / "again.html"
    subprocess.run([sys.executable, "-m", "streams.cli", "investigate", "cluster", cluster, "--audit-db", str(db),
                    "--graph", str(again)], capture_output=True, text=True, timeout=120, check=True)
    assert again.read_bytes() == page.read_bytes()  # same store, same page, in another process


def test_a_large_operation_is_drawn_aggregated(store):
    """However many groups an operation has, the picture draws a bounded number of nodes."""
    db, cluster, _page = store
    with duckdb.connect(str(db), read_only=True) as con:
        data = operation_page.read(con, cluster)
    many = [f"acct{i:05d}" for i in range(20_000)]
    links = [(a, "payment", f"card{i // 20}") for i, a in enumerate(many)] + \
            [(a, "ip", f"10.0.{i % 50}.1") for i, a in enumerate(many)]
    data.members, data.links = many, links
    p = operation_page.picture(data)
    assert p.groups == 1000
    kinds = [d["kind"] for _n, d in p.graph.nodes(data=True)]
    assert kinds.count("group") == operation_page.MAX_GROUPS and kinds.count("rest") == 1
    assert len(p.graph) <= 1 + operation_page.MAX_GROUPS + 2 + operation_page.MAX_BINDERS + operation_page.MAX_SHARED \
        + operation_page.MAX_OTHERS
    assert sum(d["accounts"] for _n, d in p.graph.nodes(data=True) if d["kind"] in ("group", "rest")) == 20_000


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("Chromium is not installed: bash .ci/setup installs it (Debian's chromium)")
    return found


def _browser(args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--no-first-run", f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr", "--v=0",
                           *args], capture_output=True, text=True, timeout=120)


def test_the_page_in_a_real_browser(store, tmp_path):
    db, cluster, page = store
    dom = _browser(["--dump-dom", page.as_uri()], tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    # no error, no blocked request (a CDN, a font, a script would be refused by the page's policy)
    for bad in ("Uncaught", "Refused to", "Failed to load resource", "net::ERR"):
        assert bad not in dom.stderr, dom.stderr[-2000:]
    body = dom.stdout
    assert "<script" not in body.lower()  # the hostile names are text in the DOM, not elements
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body or "&lt;/svg&gt;&lt;script&gt;" in body
    shown = dict(re.findall(r'<dd id="fact-([a-z_]+)" data-value="([^"]*)"', body))
    with duckdb.connect(str(db), read_only=True) as con:
        size, requests, tokens, score, severity = con.execute(
            "SELECT size, requests, tokens_out, score, severity FROM clusters WHERE cluster_id = ?", [cluster]).fetchone()
        accounts = con.execute("SELECT count(*) FROM cluster_members WHERE cluster_id = ?", [cluster]).fetchone()[0]
    assert int(shown["size"]) == size == accounts
    assert int(shown["requests"]) == requests and int(shown["tokens_out"]) == tokens
    assert float(shown["score"]) == score and shown["severity"] == severity
    assert f"{size:,}" in body and f"{requests:,}" in body
    assert body.count('class="node group"') >= 1 and 'id="plot"' in body and 'class="series accounts"' in body
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "operation-page.png"
    result = _browser(["--window-size=1000,1400", f"--screenshot={shot}", page.as_uri()], tmp_path)
    assert result.returncode == 0 and shot.stat().st_size > 20_000, result.stderr[-2000:]


def test_the_demo_ends_with_the_worst_operations_page(store, tmp_path, capsys):
    from streams.dev.demo import report, worst_page
    from streams.sinks.audit.queries import WORST_CLUSTERS

    db, _cluster, _page = store
    with duckdb.connect(str(db), read_only=True) as con:
        worst = con.execute(WORST_CLUSTERS, [1]).fetchone()[0]
        path = worst_page(con, tmp_path)
    assert path == tmp_path / f"operation-{worst}.html" and f'data-cluster="{worst}"' in path.read_text()
    report(10, 1.0, [], {}, [], {}, {}, str(db), page_path=path)
    assert f"({worst}) as a page" in capsys.readouterr().out
