"""The dev broker stops with its process: SIGTERM to `python -m streams.dev.broker run` stops the Kafka
JVM (which runs in a session of its own) and removes its data folder, as Ctrl-C does."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def jvms_for(workdir: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if "kafka.Kafka" in cmdline and workdir in cmdline:
                found.append(int(pid))
    return found


def test_sigterm_stops_the_broker_and_removes_its_data():
    run = subprocess.Popen([sys.executable, "-m", "streams.dev.broker", "run"], cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        line = run.stdout.readline() if run.stdout else ""
        match = re.search(r"data in (\S+);", line)
        assert match, line
        workdir = match.group(1)
        assert jvms_for(workdir) and Path(workdir).is_dir()
        run.send_signal(signal.SIGTERM)
        assert run.wait(timeout=60) == 0
        deadline = time.monotonic() + 30
        while jvms_for(workdir) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not jvms_for(workdir), "the Kafka JVM outlived its runner"
        assert not Path(workdir).exists(), "its data folder was left behind"
    finally:
        if run.poll() is None:
            run.kill()
