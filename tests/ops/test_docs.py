"""The docs stay true: the README is a front page (≤ 220 lines) whose two commands are the ones .ci/run
runs and whose investigate examples work on a real store; the configuration reference is generated
from the settings object; every audit view and metric is documented; every link resolves."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import duckdb

from streams.cli import main as cli
from streams.settings import reference

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", *DOCS, ROOT / "graph" / "DETECTION.md", ROOT / "tests" / "benchmarks" / "RESULTS.md"]


def test_the_readme_is_a_front_page():
    assert len(README.splitlines()) <= 220
    for page in ("architecture", "contract", "cli", "investigators", "operations", "runbook", "testing", "benchmarks"):
        assert f"](docs/{page}.md)" in README, page


def test_the_configuration_reference_is_generated_from_the_settings():
    text = (ROOT / "docs" / "cli.md").read_text()
    assert reference() in text, "docs/cli.md is stale: paste `python -m streams.settings` over its table"


def test_ci_runs_the_readme_test_command():
    run = (ROOT / ".ci" / "run").read_text()
    assert "bash .ci/setup && .venv/bin/python -m pytest" in README
    lines = run.splitlines()
    assert "bash .ci/setup" in lines and ".venv/bin/python -m pytest" in lines
    assert lines.index("bash .ci/setup") < lines.index(".venv/bin/python -m pytest")
    assert "bash .ci/setup && .venv/bin/fraudgraph demo" in README


def test_every_audit_view_is_documented():
    from streams.sinks.audit import VIEWS

    guide = (ROOT / "docs" / "investigators.md").read_text()
    for name in VIEWS:
        assert f"| `{name}` |" in guide, name


def test_every_metric_is_documented():
    from prometheus_client import CollectorRegistry

    from streams.sinks.metrics import Metrics

    operations = (ROOT / "docs" / "operations.md").read_text()
    registry = CollectorRegistry()
    Metrics(registry)
    for metric in registry.collect():
        assert metric.name.removesuffix("_total") in operations or metric.name in operations, metric.name


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings."""
    out = set()
    for line in page.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


def test_every_link_resolves():
    broken = []
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"https?://", target):
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert broken == []


def test_the_readme_examples_run_on_a_store(tmp_path):
    """The investigate lines the README shows (the demo prints the same with its own ids) work on a
    replayed store, with its largest cluster for CLUSTER_ID."""
    events = tmp_path / "events.jsonl"
    cli(["simulate", "--benign", "800", "--ring-scale", "0.05", "--days", "3", "--seed", "3", "--out", str(events)])
    db = tmp_path / "audit.duckdb"
    cli(["replay", str(events), "--audit-db", str(db), "--quiet"])
    con = duckdb.connect(str(db), read_only=True)
    cluster = con.execute("SELECT cluster_id FROM clusters WHERE status = 'live' ORDER BY size DESC LIMIT 1").fetchone()[0]
    con.close()
    examples = [line for line in README.splitlines() if line.startswith(".venv/bin/fraudgraph investigate")]
    assert len(examples) >= 3
    for line in examples:
        args = line.removeprefix(".venv/bin/fraudgraph ").replace("AUDIT_DB", str(db)).replace("CLUSTER_ID", cluster).split()
        result = subprocess.run([sys.executable, "-m", "streams.cli", *args], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, (line, result.stderr)
        assert result.stdout.strip(), line
        if "CLUSTER_ID" in line:
            assert cluster in result.stdout
