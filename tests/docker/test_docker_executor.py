"""Cells run in real containers of the CPU image, on a real engine: results, timeouts, clean-up, isolation."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from harness.common.progress_events import ProgressEvent, Started
from harness.config.model import Cell, ImageSpec
from harness.host.probe import find_intel_render_nodes
from harness.running.containers import LABEL, LABEL_HOST, LABEL_PID, LABEL_RUN, remove_stale_containers
from harness.running.executors.docker import DockerExecutor, container_user

pytestmark = pytest.mark.docker

CELLS = "tests/docker/cells"


def make_cell(name: str, test_file: str, world_size: int = 1, **overrides: Any) -> Cell:
    fields: dict[str, Any] = {
        "id": f"docker-test-{name}",
        "device": "cpu",
        "backend": "gloo",
        "world_size": world_size,
        "tests": (f"{CELLS}/{test_file}",),
        "image": ImageSpec(dockerfile="docker/cpu.Dockerfile", shm_size="1g"),
        "timeout_s": 300.0,
        "test_timeout_s": 60.0,
        "env": {"OMP_NUM_THREADS": "1"},
    }
    fields.update(overrides)
    return Cell(**fields)


def junit_property(junit: Path, name: str) -> Any:
    """The JSON value a cell's test recorded with record_property(name, ...)."""
    import xml.etree.ElementTree as ET

    for prop in ET.parse(junit).getroot().iter("property"):
        if prop.get("name") == name:
            return json.loads(prop.get("value", ""))
    raise AssertionError(f"no property {name!r} in {junit}")


class ProgressRecorder:
    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []
        self.first_start = threading.Event()

    def __call__(self, cell_id: str, event: ProgressEvent) -> None:
        self.events.append(event)
        if isinstance(event, Started):
            self.first_start.set()


def test_passing_cell_runs_in_a_container(
    executor: DockerExecutor, tmp_path: Path, docker_client: Any, cpu_image: str
) -> None:
    progress = ProgressRecorder()
    cell = make_cell("pass", "cell_collectives.py", world_size=2)

    result = executor.run(cell, tmp_path / cell.id, [], progress)

    assert result.status == "passed", result.reason
    assert (result.counts.passed, result.counts.failed) == (2, 0)
    assert result.executor == "docker"
    # The fingerprint was taken inside the container, of the image the cell ran in.
    assert result.fingerprint["image_digest"] == docker_client.images.get(cpu_image).id
    assert result.fingerprint["hostname"] != socket.gethostname()
    assert result.fingerprint["executable"].startswith("/opt/venv/")
    started = [event.nodeid for event in progress.events if isinstance(event, Started)]
    assert len(started) == 2 and all("cell_collectives.py::" in nodeid for nodeid in started)
    log = (tmp_path / cell.id / "log.txt").read_text()
    assert "2 passed" in log


def test_failing_test_makes_the_cell_failed(executor: DockerExecutor, tmp_path: Path) -> None:
    cell = make_cell("fail", "cell_one_failure.py")

    result = executor.run(cell, tmp_path / cell.id, [], ProgressRecorder())

    assert result.status == "failed"
    assert (result.counts.passed, result.counts.failed) == (1, 1)
    assert "this failure is the point of the cell" in (tmp_path / cell.id / "log.txt").read_text()


@pytest.mark.e2e
def test_timeout_kills_the_container(executor: DockerExecutor, tmp_path: Path) -> None:
    cell = make_cell("timeout", "cell_sleeps.py", timeout_s=8.0, test_timeout_s=3600.0)

    result = executor.run(cell, tmp_path / cell.id, [], ProgressRecorder())

    assert result.status == "error"
    assert "timed out after 8s" in result.reason
    # The executor fixture checks that the container is gone.


@pytest.mark.e2e
def test_interrupt_stops_a_running_cell(executor: DockerExecutor, tmp_path: Path) -> None:
    progress = ProgressRecorder()
    cell = make_cell("interrupt", "cell_sleeps.py", test_timeout_s=3600.0)
    results: list[Any] = []
    runner = threading.Thread(
        target=lambda: results.append(executor.run(cell, tmp_path / cell.id, [], progress))
    )
    runner.start()
    assert progress.first_start.wait(120), "the sleeping test never started"

    executor.interrupt()
    runner.join(60)

    assert not runner.is_alive()
    assert results[0].status == "error"
    assert results[0].reason.startswith(
        "interrupted while running tests/docker/cells/cell_sleeps.py::test_sleeps_far_past_any_timeout"
    ), results[0].reason


def test_container_sees_allow_listed_env_and_a_read_only_repo(
    executor: DockerExecutor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMM_HARNESS_TEST_SECRET", "must-stay-on-the-host")
    monkeypatch.setenv("NCCL_DEBUG", "INFO")
    cell = make_cell("probe", "cell_probe.py", env={"CELL_VARIABLE": "from-the-matrix"})

    monkeypatch.setenv("HARNESS_FROM_THE_HOST", "the harness sets its own")
    result = executor.run(cell, tmp_path / cell.id, [], ProgressRecorder())

    assert result.status == "passed", result.reason
    probe = junit_property(tmp_path / cell.id / "junit.xml", "probe")
    assert "COMM_HARNESS_TEST_SECRET" not in probe["env"]
    assert "HARNESS_FROM_THE_HOST" not in probe["env"]
    assert probe["env"]["HARNESS_RUN_ID"] == executor.run_id
    # Confined: no capabilities, no privilege gain, a pids limit; only its own work directory at /results.
    assert int(probe["cap_eff"], 16) == 0
    assert probe["no_new_privs"] == "1"
    assert probe["pids_max"] == "4096"
    assert "cell.json" in probe["results_entries"] and "log.txt" not in probe["results_entries"]
    assert not (tmp_path / cell.id / "work").exists()
    assert probe["env"]["NCCL_DEBUG"] == "INFO"
    assert probe["env"]["CELL_VARIABLE"] == "from-the-matrix"
    assert probe["repo_write"] == "EROFS"
    assert probe["cwd"] == "/repo"
    # The harness's own uid, or nobody when the harness is root; the copies out are the harness's files.
    assert (probe["uid"], probe["gid"]) == container_user()
    assert probe["uid"] != 0
    assert probe["shm_bytes"] == 1 << 30
    assert (tmp_path / cell.id / "junit.xml").stat().st_uid == os.getuid()


def test_stale_labelled_containers_are_removed_at_start(
    docker_client: Any, cpu_image: str, tmp_path: Path
) -> None:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead_pid = finished.stdout.decode().strip()
    labels = {LABEL: "1", LABEL_HOST: socket.gethostname()}
    stale = docker_client.containers.create(cpu_image, ["true"], labels={**labels, LABEL_PID: dead_pid})
    live = docker_client.containers.create(
        cpu_image, ["true"], labels={**labels, LABEL_PID: str(os.getpid())}
    )
    try:
        removed = remove_stale_containers(docker_client)

        assert stale.name in removed
        assert live.name not in removed
        names = {container.name for container in docker_client.containers.list(all=True, ignore_removed=True)}
        assert stale.name not in names and live.name in names
    finally:
        live.remove(force=True)


def test_close_removes_every_container_of_its_run(docker_client: Any, cpu_image: str) -> None:
    executor = DockerExecutor(Path("."), client=docker_client)

    orphan = docker_client.containers.create(
        cpu_image, ["true"], labels={LABEL: "1", LABEL_RUN: executor.run_id, LABEL_PID: str(os.getpid())}
    )

    executor.close()

    assert orphan.name not in {
        container.name for container in docker_client.containers.list(all=True, ignore_removed=True)
    }


@pytest.mark.skipif(bool(find_intel_render_nodes()), reason="this host has an Intel GPU")
def test_xpu_cell_without_an_intel_gpu_is_skipped_not_run(executor: DockerExecutor, tmp_path: Path) -> None:
    cell = make_cell(
        "xpu",
        "cell_one_failure.py",
        device="xpu",
        backend="xccl",
        image=ImageSpec(dockerfile="docker/xpu.Dockerfile"),
    )

    result = executor.run(cell, tmp_path / cell.id, [0], ProgressRecorder())

    assert result.status == "skipped"
    assert result.reason == "no Intel GPU on this host"
    assert result.counts.total == 0


@pytest.mark.e2e
def test_image_build_failure_makes_the_cell_an_error(executor: DockerExecutor, tmp_path: Path) -> None:
    broken = ImageSpec(dockerfile="tests/docker/broken/broken.Dockerfile")
    cell = make_cell("broken-image", "cell_one_failure.py", image=broken)

    present, reason = executor.image_status(cell)
    result = executor.run(cell, tmp_path / cell.id, [], ProgressRecorder())

    assert not present and "harness images build cpu" in reason
    assert result.status == "error"
    assert "building it failed" in result.reason
    assert "unreachable: scratch has no /bin/sh" in result.reason  # the build log's tail


@pytest.mark.parametrize("offline", [False, True])
def test_run_offline_builds_missing_images_without_a_registry(docker_client: Any, offline: bool) -> None:
    from harness.running.runs import plan_matrix

    matrix = Path(__file__).resolve().parents[2] / "matrix.yaml"
    with plan_matrix(matrix, executor="docker", offline=offline) as plan:
        assert isinstance(plan.docker, DockerExecutor) and plan.docker.offline is offline
