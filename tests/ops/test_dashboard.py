"""The Grafana dashboard is valid JSON and every metric it charts is one the worker exports."""

import json
import re
from pathlib import Path

from streams.sinks.metrics import Metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "fraudgraph.json"


def test_dashboard_only_uses_exported_metrics():
    dashboard = json.loads(DASHBOARD.read_text())
    exported = set()
    for family in Metrics().registry.collect():
        exported.update({family.name, family.name + "_total"})  # labelled counters may have no samples yet
        exported.update(sample.name for sample in family.samples)
    used = {m for p in dashboard["panels"] for t in p["targets"] for m in re.findall(r"fraudgraph_\w+", t["expr"])}
    assert used and used <= exported, used - exported
