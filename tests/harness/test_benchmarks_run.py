"""Every script in benchmarks/ still starts: its imports resolve and its options parse (`--help`).

The scripts measure the figures the documentation quotes (docs/measured.md); they are not run for real here
(minutes, noisy machines), but a refactor that breaks one fails this test instead of the next person's
measurement.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPTS = sorted(
    path.name for path in BENCHMARKS.glob("*.py") if 'if __name__ == "__main__"' in path.read_text()
)


def test_every_benchmark_script_is_found() -> None:
    assert "plugin_overhead.py" in SCRIPTS and "containment_probes.py" in SCRIPTS


@pytest.mark.e2e
def test_every_benchmark_script_starts() -> None:
    # All at once: each spends its second or two importing torch, and they do not share anything.
    started = {
        script: subprocess.Popen(
            [sys.executable, str(BENCHMARKS / script), "--help"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=BENCHMARKS.parent,
        )
        for script in SCRIPTS
    }
    broken = {}
    for script, process in started.items():
        stdout, stderr = process.communicate(timeout=300)
        if process.returncode != 0 or "usage:" not in stdout:
            broken[script] = stderr.strip().splitlines()[-1:] or [f"exit code {process.returncode}"]
    assert not broken, broken
