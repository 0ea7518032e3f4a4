"""Every setting is documented in the README with its env var; the README's two commands are the ones
.ci/run runs."""

from dataclasses import fields
from pathlib import Path

from streams.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_every_setting_is_documented_with_its_env_var():
    for f in fields(Settings):
        flag = f"--{f.name.replace('_', '-')}"
        assert f"`{flag}`" in README and f"`{f.metadata['env']}`" in README, f.name
        assert f.metadata["help"], f.name


def test_ci_runs_the_readme_test_command():
    run = (ROOT / ".ci" / "run").read_text()
    assert "bash .ci/setup && .venv/bin/python -m pytest" in README
    lines = run.splitlines()
    assert "bash .ci/setup" in lines and ".venv/bin/python -m pytest" in lines
    assert lines.index("bash .ci/setup") < lines.index(".venv/bin/python -m pytest")
    assert "bash .ci/setup && .venv/bin/fraudgraph demo" in README


def test_every_audit_view_is_documented():
    from streams.sinks.audit import VIEWS

    for name in VIEWS:
        assert f"| `{name}` |" in README, name


def test_every_metric_is_documented():
    from prometheus_client import CollectorRegistry

    from streams.sinks.metrics import Metrics

    registry = CollectorRegistry()
    Metrics(registry)
    for metric in registry.collect():
        assert metric.name.removesuffix("_total") in README or metric.name in README, metric.name
