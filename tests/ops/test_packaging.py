"""The wheel users and the image install holds the whole product: built with ``pip wheel``, installed
non-editable into a fresh venv, run from a folder outside the checkout (so nothing is imported from
the work tree), it simulates, replays and knows its demo, and ships the dev broker's Maven project."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration  # builds the kernel and installs dependencies: not the fast loop


def _run(cmd: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{cmd[:3]} exited {result.returncode}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


def test_wheel_installed_non_editable_runs_every_tool(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)], cwd=tmp_path)
    (wheel,) = wheels.glob("fraudgraph-*.whl")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py, cli = env_dir / "bin" / "python", env_dir / "bin" / "fraudgraph"
    _run([str(py), "-m", "pip", "install", "-q", str(wheel)], cwd=tmp_path)

    origin = _run([str(py), "-c", "import streams.dev.sim, graph._kernel, streams; print(streams.__file__)"], cwd=tmp_path)
    assert str(env_dir) in origin.stdout and str(ROOT) not in origin.stdout  # the wheel's copy, not the checkout
    pom = _run([str(py), "-c", "from streams.dev.broker import POM, LOG4J_CONFIG, kafka_version; "
                "assert POM.is_file() and LOG4J_CONFIG.is_file(); print(kafka_version())"], cwd=tmp_path)
    assert pom.stdout.strip()

    events = tmp_path / "events.jsonl"
    _run([str(cli), "simulate", "--out", str(events), "--benign", "2000", "--ring-scale", "0.2", "--rings", "3",
          "--days", "1"], cwd=tmp_path)
    assert events.stat().st_size > 0
    _run([str(cli), "replay", str(events), "--audit-db", str(tmp_path / "audit.duckdb"), "--quiet"], cwd=tmp_path)
    worst = _run([str(cli), "investigate", "worst", "--audit-db", str(tmp_path / "audit.duckdb")], cwd=tmp_path)
    assert "C0" in worst.stdout  # the planted rings were found by the installed engine
    demo = _run([str(cli), "demo", "--help"], cwd=tmp_path)
    assert "--workdir" in demo.stdout
    db = str(tmp_path / "audit.duckdb")
    cluster = next(word for word in worst.stdout.split() if word.startswith("C0"))
    graph = _run([str(cli), "investigate", "cluster", cluster, "--audit-db", db, "--graph", str(tmp_path / "op.gexf")],
                 cwd=tmp_path)
    assert "graph:" in graph.stdout and (tmp_path / "op.gexf").stat().st_size > 0  # networkx installed with it
    _run([str(cli), "export", "--out", str(tmp_path / "export"), "--audit-db", db], cwd=tmp_path)
    assert any((tmp_path / "export").iterdir())
    for command in ("worker", "verdict"):  # the Kafka side: its flags parse, confluent-kafka and faust import
        assert "--bootstrap" in _run([str(cli), command, "--help"], cwd=tmp_path).stdout
    _run([str(py), "-c", "import streams.worker.intake, streams.worker.app"], cwd=tmp_path)
