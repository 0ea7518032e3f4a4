"""The kernel's own Rust unit tests (allocator, 16-byte lists, de-duplication store, interner, ...),
run by the project's test command so they cannot rot unseen. Built without the Python extension
feature, in a target folder of its own, so the installed extension is untouched."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

KERNEL = Path(__file__).resolve().parents[2] / "graph" / "kernel"


def cargo() -> str:
    found = shutil.which("cargo") or str(Path.home() / ".cargo" / "bin" / "cargo")
    assert Path(found).exists(), "cargo is needed to build the kernel (README, set-up)"
    return found


def test_the_kernels_rust_unit_tests_pass() -> None:
    env = {**os.environ, "PYO3_PYTHON": sys.executable,
           "CARGO_TARGET_DIR": str(KERNEL / "target" / "unit-tests")}
    done = subprocess.run([cargo(), "test", "--release", "--no-default-features", "--quiet"], cwd=KERNEL, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    passed = sum(int(n) for n in re.findall(r"test result: ok\. (\d+) passed", done.stdout))
    assert passed >= 16, f"only {passed} kernel unit tests ran:\n{done.stdout[-2000:]}"
