"""Static membership (--instance-id, the StatefulSet pod's name): a worker restarted within the session
timeout gets its partitions back without a rebalance — the other worker's assignment and stage B do
not move while it is away."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import replace

from streams.dev.localrun import wait_for


def test_a_restart_within_the_session_timeout_does_not_move_the_other_workers_partitions(worker):
    first = worker(partitions=4, instance_id="w-0")
    second = first.twin("second")
    second.settings = replace(second.settings, instance_id="w-1")
    try:
        first.launch(), second.launch()
        wait_for(lambda: all(w.metric("fraudgraph_recovering") == 0 and (w.metric("fraudgraph_assigned_partitions") or 0) == 2
                             for w in (first, second)), 120, "two workers with two input partitions each")
        owner_before = first.metric("fraudgraph_global_stage_owner")
        os.killpg(second.proc.pid, signal.SIGKILL)  # no leave request: a pod being replaced
        second.proc.wait()
        second.launch()
        seen = set()
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            seen.add(first.metric("fraudgraph_assigned_partitions"))
            if (second.metric("fraudgraph_assigned_partitions") or 0) == 2 and second.metric("fraudgraph_recovering") == 0:
                break
            time.sleep(0.5)
        assert (second.metric("fraudgraph_assigned_partitions") or 0) == 2, second.log()
        assert seen == {2}, f"the other worker's input partitions moved: {sorted(seen)}"
        assert first.metric("fraudgraph_global_stage_owner") == owner_before
    finally:
        second.stop()
