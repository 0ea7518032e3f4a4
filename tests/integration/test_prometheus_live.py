"""A real Prometheus server (Debian's package) scrapes a running worker fed by the real broker, and
the high-severity fraud alert reaches `firing` through Prometheus's HTTP API."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request

from streams.dev.localrun import wait_for
from streams.dev.broker import free_port
from tests.integration.conftest import contract_json
from tests.ops.test_prometheus_rules import RULES
from tests.unit.scenarios import farm


def test_high_severity_alert_fires_in_real_prometheus(worker, tmp_path):
    w = worker(lateness_seconds=5.0, tick_seconds=10.0).start()
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: ['{RULES}']\n"
        "scrape_configs:\n"
        f"  - job_name: fraudgraph\n    static_configs: [{{targets: ['127.0.0.1:{w.settings.metrics_port}']}}]\n")
    prometheus = subprocess.Popen(
        [shutil.which("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=open(tmp_path / "prometheus.log", "wb"), stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{port}/api/v1"

    def get(path: str) -> dict:
        return json.loads(urllib.request.urlopen(api + path, timeout=5).read())

    try:
        wait_for(lambda: any(t["health"] == "up" for t in get("/targets")["data"]["activeTargets"]), 60,
                 "Prometheus to scrape the worker", prometheus)
        assert not get("/alerts")["data"]["alerts"]
        w.produce([contract_json(e) for e in farm("f", 120, devices=8)])
        w.wait_consumed()

        def firing():
            alerts = get("/alerts")["data"]["alerts"]
            return [a for a in alerts if a["labels"]["alertname"] == "FraudgraphHighSeverityCluster"
                    and a["state"] == "firing"]

        (alert,) = wait_for(firing, 90, "FraudgraphHighSeverityCluster to fire", prometheus)
        assert alert["labels"]["severity"] == "page"
        assert "high severity" in alert["annotations"]["description"]
    finally:
        prometheus.terminate()
        prometheus.wait(timeout=30)
