"""The committed .buildkite/pipeline.yml and .gitlab-ci.yml are valid and, run as their CI system runs them,
produce the selected cells' pipeline; that pipeline's report step merges the cells' artifacts strictly."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from github_runs import REPO_ROOT, harness_env
from pipelines import pipeline, schema_check, write_ci_project

from harness.ci.cell_jobs import install_commands
from harness.commands.cli import main as harness_main
from harness.running.images import DEVICE_IMAGES

pytestmark = pytest.mark.e2e

BUILDKITE = REPO_ROOT / ".buildkite" / "pipeline.yml"
GITLAB = REPO_ROOT / ".gitlab-ci.yml"
CPU_TORCH = DEVICE_IMAGES["cpu"].build_args
# Stand-ins on PATH: `harness` is this checkout's CLI; `buildkite-agent pipeline upload FILE` keeps FILE
# where the test finds it (the real agent sends it to Buildkite).
SHIMS = {
    "harness": f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m harness.commands.cli "$@"\n',
    "buildkite-agent": '#!/bin/sh\n[ "$1 $2" = "pipeline upload" ] && cp "$3" "$UPLOADED"\n',
}


def plan_commands(path: Path) -> list[str]:
    """The plan job's commands, after the set-up it shares with every cell job."""
    document = yaml.safe_load(path.read_text())
    if path == BUILDKITE:
        commands = [step for step in document["steps"] if step["key"] == "plan"][0]["commands"]
        # `buildkite-agent pipeline upload` turns `$$` into `$` before the agent runs the step.
        commands = [command.replace("$$", "$") for command in commands]
    else:
        commands = document["plan"]["script"]
    setup = install_commands(CPU_TORCH["TORCH_VERSION"], CPU_TORCH["TORCH_INDEX_URL"], ["-e ."])
    assert commands[: len(setup)] == setup, f"{path.name} sets up the harness unlike the cell jobs"
    return commands[len(setup) :]


def run_plan(path: Path, project: Path, shell: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The plan job's commands in one shell, as the CI system runs them, in `project`."""
    shims = project / "shims"
    shims.mkdir(exist_ok=True)
    for name, text in SHIMS.items():
        (shims / name).write_text(text)
        (shims / name).chmod(0o755)
    environment = harness_env(UPLOADED=str(project / "uploaded.yml"), **env)
    environment["PATH"] = f"{shims}{os.pathsep}{environment['PATH']}"
    script = "set -e\n" + "\n".join(plan_commands(path))
    return subprocess.run(
        [shell, "-c", script], cwd=project, env=environment, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("path, fmt", [(BUILDKITE, "buildkite"), (GITLAB, "gitlab")], ids=["bk", "gitlab"])
def test_the_committed_file_is_valid_under_the_published_schema(path, fmt):
    done = schema_check(path, fmt)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    "cells, expected",
    [
        (None, ["cpu-gloo-ws1", "cpu-gloo-ws2", "xpu-xccl-ws1"]),
        ("cpu-* xpu-*ws9", None),
        ("cpu-*", ["cpu-gloo-ws1", "cpu-gloo-ws2"]),
    ],
    ids=["every cell", "a pattern matching nothing", "cpu cells"],
)
def test_the_buildkite_plan_step_uploads_the_cells_harness_cells_selects(tmp_path, cells, expected):
    write_ci_project(tmp_path)
    done = run_plan(BUILDKITE, tmp_path, "bash", **({"HARNESS_CELLS": cells} if cells else {}))
    if expected is None:
        # The step fails before uploading anything, saying why.
        assert done.returncode == 2 and "'xpu-*ws9' matches no cell" in done.stderr
        assert not (tmp_path / "uploaded.yml").exists()
        return
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == expected  # the ids, in the step's log
    uploaded = yaml.safe_load((tmp_path / "uploaded.yml").read_text())
    assert [step["key"] for step in uploaded["steps"]] == [*expected, "report"]
    # Without HARNESS_CELLS the step selects with '*'.
    patterns = [word for pattern in (cells or "*").split() for word in ("--cell", pattern)]
    assert uploaded == pipeline("buildkite", *patterns, cwd=tmp_path)


def test_the_gitlab_plan_job_writes_the_child_pipeline_its_trigger_job_includes(tmp_path):
    write_ci_project(tmp_path)
    document = yaml.safe_load(GITLAB.read_text())
    # GitLab's own shell may be sh: the script keeps to POSIX.
    done = run_plan(GITLAB, tmp_path, "sh", HARNESS_CELLS="cpu-gloo-ws1 xpu-*")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["cpu-gloo-ws1", "xpu-xccl-ws1"]
    [artifact] = document["plan"]["artifacts"]["paths"]
    child = yaml.safe_load((tmp_path / artifact).read_text())
    jobs = [name for name in child if name not in ("stages", "variables")]
    assert jobs == ["cpu-gloo-ws1", "xpu-xccl-ws1", "report"]
    assert document["cells"]["trigger"]["include"] == [{"artifact": artifact, "job": "plan"}]
    assert document["cells"]["trigger"]["strategy"] == "depend"
    assert document["variables"]["HARNESS_CELLS"]["value"] == "*"


def cell_artifacts(fmt: str, document: dict, cell: str) -> list[str]:
    if fmt == "buildkite":
        return next(step for step in document["steps"] if step["key"] == cell)["artifact_paths"]
    return document[cell]["artifacts"]["paths"]


def report_command(fmt: str, document: dict) -> list[str]:
    commands = document["steps"][-1]["commands"] if fmt == "buildkite" else document["report"]["script"]
    return shlex.split(next(command for command in commands if command.startswith("harness report ")))


@pytest.mark.parametrize("fmt", ["buildkite", "gitlab"])
def test_the_report_step_merges_what_the_cell_steps_kept_and_is_strict(two_runs, tmp_path, fmt, monkeypatch):
    write_ci_project(tmp_path)
    document = pipeline(fmt, "--cell", "cpu-*", cwd=tmp_path)
    report = report_command(fmt, document)
    monkeypatch.chdir(tmp_path)

    def download(cell: str) -> None:
        # What the cell's job kept (two_runs ran each cell with the same --out), as the report job gets it.
        for pattern in cell_artifacts(fmt, document, cell):
            for found in two_runs.root.glob(pattern.rstrip("/")):
                target = tmp_path / found.relative_to(two_runs.root)
                if found.is_dir():
                    shutil.copytree(found, target, dirs_exist_ok=True)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(found, target)

    download("cpu-gloo-ws1")
    # cpu-gloo-ws2 left nothing (its job died): a required cell missing, so --strict exits 3.
    assert harness_main(report[1:]) == 3
    download("cpu-gloo-ws2")
    assert harness_main(report[1:]) == 1  # both there; ws2 failed on rank 1
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert {cell["id"]: cell["status"] for cell in summary["cells"]} == {
        "cpu-gloo-ws1": "passed",
        "cpu-gloo-ws2": "failed",
    }
    assert (tmp_path / "report" / "junit.xml").is_file() and (tmp_path / "report" / "summary.md").is_file()
