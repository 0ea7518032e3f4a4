"""The alert rules are valid for promtool and their unit tests pass; every alert is documented."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "fraudgraph.rules.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "tests" / "fraudgraph.rules.test.yml"


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is missing: .ci/setup installs Debian's prometheus package"
    return path


def test_rules_pass_promtool_check(promtool):
    result = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass(promtool):
    result = subprocess.run([promtool, "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_labelled_and_documented():
    rules = RULES.read_text()
    alerts = re.findall(r"- alert: (\w+)", rules)
    assert len(alerts) >= 6
    tests = RULE_TESTS.read_text()
    readme = (ROOT / "docs" / "operations.md").read_text()
    for alert in alerts:
        assert f"alertname: {alert}" in tests, f"{alert} has no promtool test"
        assert alert in readme, f"{alert} is not documented in docs/operations.md"
    assert rules.count("severity:") == rules.count("summary:") == rules.count("description:") == len(alerts)


def test_every_alert_has_a_runbook_section():
    """Each rule's runbook_url is docs/runbook.md#<rule, lower-cased>, and that section exists (with what
    the alert means and what to do)."""
    rules = RULES.read_text()
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    headings = {h.strip().lower() for h in re.findall(r"^## (.+)$", runbook, flags=re.M)}
    blocks = re.split(r"\n      - alert: ", rules)[1:]
    assert len(blocks) == len(re.findall(r"- alert: (\w+)", rules))
    for block in blocks:
        alert = block.split("\n", 1)[0].strip()
        assert f'runbook_url: "docs/runbook.md#{alert.lower()}"' in block, f"{alert} has no runbook_url"
        assert alert.lower() in headings, f"docs/runbook.md has no section for {alert}"
        section = runbook.split(f"## {alert}\n", 1)[1].split("\n## ", 1)[0]
        assert "**Means:**" in section and "**Do:**" in section, alert
