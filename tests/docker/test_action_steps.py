"""The action's bash steps, their scripts run verbatim: a cell that cannot run on the runner fails the job
(exit 5, no test ran), an empty `cell` input is an error naming the fix, and the cell's image is kept in the
Actions cache by the tag the plan gives it, where the plan caches, and is loaded back on a hit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
ACTION = yaml.safe_load((REPO_ROOT / "action.yml").read_text())

MATRIX = "version: 1\ndefaults: {tests: [tests]}\ndevices:\n  xpu: {world_sizes: [1], image: {}}\n"
# cpu on a GitHub-hosted runner (the plan caches its image), xpu on a self-hosted one (it does not).
CI_MATRIX = """version: 1
defaults: {tests: [tests]}
devices:
  cpu: {world_sizes: [1], runs_on: [ubuntu-latest], image: {dockerfile: Dockerfile}}
  xpu: {world_sizes: [1], runs_on: [self-hosted, gpu-intel], image: {}}
"""


def run_step(
    project: Path, name: str, **inputs: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """The action's step `name`, its script under bash with its inputs as the action passes them; returns the
    process and what the step wrote to $GITHUB_OUTPUT."""
    script = next(s for s in ACTION["runs"]["steps"] if s.get("name") == name)["run"]
    # The job's own files lie beside the project, as $RUNNER_TEMP does: inside, they would change the hash of
    # an image whose build context is the project, and with it the tag.
    job = project.parent / "job"
    # `harness` as the job has it: this checkout's, on PATH.
    bin_dir = job / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / "harness").write_text(f'#!/bin/sh\nexec {sys.executable} -m harness.commands.cli "$@"\n')
    (bin_dir / "harness").chmod(0o755)
    output = job / "github_output"
    output.write_text("")
    runner_temp = job / "runner_temp"
    runner_temp.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO_ROOT),
        "GITHUB_OUTPUT": str(output),
        "RUNNER_TEMP": str(runner_temp),
        "MATRIX": "matrix.yaml",
        "PYTEST_ARGS": "",
        **inputs,
    }
    process = subprocess.run(
        ["bash", "-c", script], cwd=project, env=env, capture_output=True, text=True, timeout=300
    )
    return process, dict(line.split("=", 1) for line in output.read_text().splitlines())


def ci_project(tmp_path: Path) -> Path:
    """CI_MATRIX with its tests and an image of one file, built without a registry; the file's content is
    the project's path, so the image's tag is this test's alone."""
    root = tmp_path / "project"
    (root / "tests").mkdir(parents=True)
    (root / "Dockerfile").write_text("FROM scratch\nCOPY marker /marker\n")
    (root / "marker").write_text(str(root))
    (root / "matrix.yaml").write_text(CI_MATRIX)
    return root


def planned_entry(project: Path, cell: str) -> dict[str, Any]:
    """The cell's entry in the GitHub fan-out, as the plan job prints it."""
    from harness.ci.cell_jobs import CellJob
    from harness.ci.github import matrix_entry
    from harness.config.matrix import load_matrix

    cells = load_matrix(project / "matrix.yaml").cells
    return matrix_entry(CellJob(next(c for c in cells if c.id == cell), "matrix.yaml", project))


@pytest.mark.docker
def test_a_skipped_cell_fails_its_job_and_an_empty_cell_is_an_error(tmp_path: Path, docker_client: Any):
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "test_one.py").write_text("def test_one():\n    pass\n")
    (project / "matrix.yaml").write_text(MATRIX)
    skipped, outputs = run_step(project, "harness run", CELL="xpu-xccl-ws1")
    assert skipped.returncode == 5, skipped.stdout + skipped.stderr
    assert "no test ran: every cell was skipped" in skipped.stdout
    assert outputs == {"results": "results/xpu-xccl-ws1"}
    empty, _ = run_step(project, "harness run", CELL="")
    assert empty.returncode == 2 and "the input `cell` is empty" in empty.stdout


def test_the_image_cache_is_keyed_by_the_cells_planned_image_where_the_plan_caches(tmp_path: Path):
    project = ci_project(tmp_path)
    hosted, outputs = run_step(project, "Plan the image cache", CELL="cpu-gloo-ws1", CACHE_IMAGE="auto")
    assert hosted.returncode == 0, hosted.stdout + hosted.stderr
    cpu = planned_entry(project, "cpu-gloo-ws1")
    assert outputs == {"cache": "true", "image": cpu["image"], "device": "cpu", "key": cpu["image_cache_key"]}
    # A self-hosted runner keeps its images in its own engine, unless the workflow asks for the cache.
    own_engine, outputs = run_step(project, "Plan the image cache", CELL="xpu-xccl-ws1", CACHE_IMAGE="auto")
    assert own_engine.returncode == 0 and outputs["cache"] == "false", own_engine.stdout + own_engine.stderr
    asked, outputs = run_step(project, "Plan the image cache", CELL="xpu-xccl-ws1", CACHE_IMAGE="true")
    assert asked.returncode == 0 and outputs["cache"] == "true"
    assert outputs["key"] == planned_entry(project, "xpu-xccl-ws1")["image_cache_key"]


def test_without_a_plan_the_cell_runs_uncached_and_a_wrong_setting_is_an_error(tmp_path: Path):
    project = ci_project(tmp_path)
    unplanned, outputs = run_step(project, "Plan the image cache", CELL="cpu-gloo-ws9", CACHE_IMAGE="auto")
    assert unplanned.returncode == 0 and outputs == {"cache": "false"}, unplanned.stdout + unplanned.stderr
    assert "::warning::comm-harness: no image cache" in unplanned.stdout
    off, outputs = run_step(project, "Plan the image cache", CELL="cpu-gloo-ws1", CACHE_IMAGE="false")
    assert off.returncode == 0 and outputs == {"cache": "false"}
    wrong, outputs = run_step(project, "Plan the image cache", CELL="cpu-gloo-ws1", CACHE_IMAGE="yes")
    assert wrong.returncode == 2 and "none of auto, true, false" in wrong.stdout and outputs == {}


@pytest.mark.docker
def test_a_built_image_is_saved_for_the_cache_and_a_hit_loads_it_back(tmp_path: Path, docker_client: Any):
    project = ci_project(tmp_path)
    entry = planned_entry(project, "cpu-gloo-ws1")
    image, tarball = entry["image"], tmp_path / "job" / "runner_temp" / "comm-harness-image.tar"
    try:
        built, outputs = run_step(project, "Build the image for the cache", DEVICE="cpu", IMAGE=image)
        assert built.returncode == 0 and outputs == {"saved": "true"}, built.stdout + built.stderr
        assert tarball.stat().st_size > 0
        # The next run's runner: the image is not in its engine until the cache hit loads it.
        docker_client.images.remove(image)
        loaded, _ = run_step(project, "Load the image")
        assert loaded.returncode == 0, loaded.stdout + loaded.stderr
        assert docker_client.images.get(image).tags == [image]
        assert not tarball.exists()
    finally:
        if docker_client.images.list(name=image):
            docker_client.images.remove(image)


@pytest.mark.docker
def test_a_damaged_cache_only_costs_the_cache(tmp_path: Path, docker_client: Any):
    project = ci_project(tmp_path)
    (tmp_path / "job" / "runner_temp").mkdir(parents=True)
    (tmp_path / "job" / "runner_temp" / "comm-harness-image.tar").write_text("not a tarball")
    loaded, _ = run_step(project, "Load the image")
    assert loaded.returncode == 0 and "the cached image did not load" in loaded.stdout
