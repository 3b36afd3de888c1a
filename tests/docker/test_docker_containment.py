"""A hostile or runaway test in a container cannot reach the host, and nothing outlives the harness.

Real containers of the CPU image: a test that plants links where the harness reads its results, a test
that exceeds the cell's memory limit, and `harness run --executor docker` killed with SIGKILL.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_docker_executor import ProgressRecorder, make_cell

from harness.config.model import ImageSpec
from harness.running.containers import LABEL_RUN
from harness.running.executors.docker import DockerExecutor
from harness.running.guardian import RUN_RECORD

HARNESS = [sys.executable, "-m", "harness.commands.cli"]

pytestmark = [pytest.mark.docker, pytest.mark.e2e]
REPO_ROOT = Path(__file__).resolve().parents[2]


def test_links_planted_by_a_test_are_refused_and_nothing_is_read_through_them(
    executor: DockerExecutor, tmp_path: Path
) -> None:
    secret = tmp_path / "host-secret.txt"
    secret.write_text("THE HOST'S SECRET\n")
    cell = make_cell("tampers", "cell_tampers.py", env={"HOST_SECRET": str(secret)})
    cell_dir = tmp_path / "out" / cell.id

    result = executor.run(cell, cell_dir, [], ProgressRecorder())

    assert result.status == "error"
    assert "junit.xml is a symbolic link" in result.reason
    assert "THE HOST'S SECRET" not in json.dumps(result.to_json())
    assert secret.read_text() == "THE HOST'S SECRET\n"
    assert sorted(p.name for p in cell_dir.iterdir()) == ["cell.json", "log.txt"]
    assert not any(p.is_symlink() for p in cell_dir.iterdir())

    # The next run into the same directory writes its files without following anything left there.
    again = executor.run(make_cell("tampers", "cell_probe.py"), cell_dir, [], ProgressRecorder())
    assert again.status == "passed", again.reason
    assert secret.read_text() == "THE HOST'S SECRET\n"


def test_a_cell_over_its_memory_limit_errors_saying_so(executor: DockerExecutor, tmp_path: Path) -> None:
    image = ImageSpec(dockerfile="docker/cpu.Dockerfile", shm_size="1g", memory="768m")
    cell = make_cell("memory", "cell_eats_memory.py", image=image)

    result = executor.run(cell, tmp_path / cell.id, [], ProgressRecorder())

    assert result.status == "error", result.reason
    assert result.reason.startswith("out of memory"), result.reason
    assert "768m" in result.reason


def test_kill_9_of_the_harness_leaves_no_container_within_10_s(
    docker_client: Any, cpu_image: str, tmp_path: Path
) -> None:
    tmp_path.chmod(0o755)  # the project directory: readable by the cells' uid when the harness is root
    (tmp_path / "matrix.yaml").write_text(
        f"version: 1\n"
        f"defaults: {{tests: [{REPO_ROOT}/tests/docker/cells/cell_sleeps.py], timeout: 600}}\n"
        f"devices:\n"
        f"  cpu: {{world_sizes: [1], image: {{dockerfile: {REPO_ROOT}/docker/cpu.Dockerfile}}}}\n"
    )
    harness = subprocess.Popen(
        [*HARNESS, "run", "--executor", "docker", "--offline", "--out", "out"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180
        while not (tmp_path / "out" / "cpu-gloo-ws1" / "work" / "progress.jsonl").exists():
            assert time.monotonic() < deadline and harness.poll() is None, "the cell never started"
            time.sleep(0.2)
        run_id = json.loads((tmp_path / "out" / RUN_RECORD).read_text())["run_id"]
        mine = {"label": f"{LABEL_RUN}={run_id}"}
        assert docker_client.containers.list(filters=mine)
    finally:
        harness.kill()
        harness.wait()
    killed_at = time.monotonic()

    while docker_client.containers.list(all=True, filters=mine, ignore_removed=True):
        assert time.monotonic() - killed_at < 10, "the run's container outlived the harness by 10 s"
        time.sleep(0.2)
