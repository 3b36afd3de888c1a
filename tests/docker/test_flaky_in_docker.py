"""Retries on fresh ranks inside a cell's container (issue 36): the same verdicts as on the host.

A test that fails on its first attempt only (its attempts counted in a file) and one that hangs once are run
by a real `harness run --executor docker` with `retries: 1`: both are flaky, the cell passes, and the merged
junit.xml holds their failed attempts as Surefire's flakyFailure elements.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

HARNESS = [sys.executable, "-m", "harness.commands.cli"]

REPO_ROOT = Path(__file__).resolve().parents[2]
FLAKY_SUITE = REPO_ROOT / "tests" / "plugin" / "suites" / "flaky" / "test_flaky.py"
MATRIX = """\
version: 1
defaults: {tests: [tests/test_flaky.py], timeout: 600, test_timeout: 20, keyword: first_attempt or hangs_once}
devices:
  cpu: {world_sizes: [2], retries: 1, image: {shm_size: 1g}}
"""

pytestmark = [pytest.mark.docker, pytest.mark.e2e]


def test_a_test_that_fails_once_and_one_that_hangs_once_are_flaky_in_a_container(
    tmp_path: Path, docker_client: Any, cpu_image: str
) -> None:
    (tmp_path / "tests").mkdir()
    shutil.copy(FLAKY_SUITE, tmp_path / "tests" / "test_flaky.py")
    (tmp_path / "matrix.yaml").write_text(MATRIX)
    tmp_path.chmod(0o755)  # as root, the cell runs as nobody and must read the project it is given

    done = subprocess.run(
        [*HARNESS, "run", "matrix.yaml", "--executor", "docker", "--out", "out"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        timeout=900,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    [cell] = json.loads((tmp_path / "out" / "summary.json").read_text())["cells"]
    assert cell["executor"] == "docker", cell
    assert cell["status"] == "passed" and cell["counts"]["flaky"] == 2 and cell["counts"]["passed"] == 2
    merged = ET.parse(tmp_path / "out" / "junit.xml").getroot()
    flaky = {case.get("name") for case in merged.iter("testcase") if case.find("flakyFailure") is not None}
    assert flaky == {"test_fails_first_attempt_only", "test_hangs_once"}
