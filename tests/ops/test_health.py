"""The worker's probes: /healthz while the process serves, /readyz only once it is live."""

import urllib.error
import urllib.request

from streams.dev.broker import free_port
from streams.sinks.metrics import Metrics, serve


def status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_ready_only_when_recovered_and_assigned_and_the_partition_count_holds():
    metrics, port = Metrics(), free_port()
    serve(metrics, port, "127.0.0.1", metrics.live)
    metrics.recovering.set(1)
    assert (status(port, "/healthz"), status(port, "/readyz")) == (200, 503)
    metrics.recovering.set(0)
    assert status(port, "/readyz") == 503, "no input partition assigned yet"
    metrics.global_owner.set(1)
    assert status(port, "/readyz") == 200, "stage B alone (more workers than input partitions)"
    metrics.global_owner.set(0)
    metrics.assigned_partitions.set(2)
    assert status(port, "/readyz") == 200
    metrics.ownership_conflict.set(1)
    assert status(port, "/readyz") == 503
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert b"fraudgraph_recovering" in response.read()
