"""Shared by the Buildkite and GitLab CI tests: generate a pipeline, check it against its published schema."""

from __future__ import annotations

import io
import os
import shutil
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import check_jsonschema
import yaml
from github_runs import REPO_ROOT, write_project

from harness.commands.cli import main as harness_main

# check-jsonschema's copies of the schemas Buildkite and GitLab publish for their pipeline files.
SCHEMAS = {"buildkite": "vendor.buildkite", "gitlab": "vendor.gitlab-ci"}
# A project whose devices name where they run on every CI system.
CI_MATRIX = """
version: 1
defaults: {tests: [tests/test_tiny.py], timeout: 300, test_timeout: 60, required: true}
devices:
  cpu:
    world_sizes: [1, 2]
    image: {}
    runs_on: [ubuntu-latest]
    buildkite: {agents: {queue: cpu, os: linux}}
    gitlab: {tags: [linux, docker]}
  xpu:
    world_sizes: [1]
    image: {}
    runs_on: [self-hosted, gpu-intel]
    buildkite: {agents: {queue: gpu-intel}}
    gitlab: {tags: [gpu-intel]}
    required: false
"""


def write_ci_project(root: Path, matrix: str = CI_MATRIX) -> Path:
    """write_project, with the repository's Dockerfiles: a cell's job builds its image from them."""
    shutil.copytree(REPO_ROOT / "docker", root / "docker", dirs_exist_ok=True)
    return write_project(root, matrix)


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: str
    stderr: str


def _in_process(entry_point, argv: list[str]) -> Outcome:
    # In this process, not a subprocess: these commands only read files, and a Python start-up per call
    # would make the tests slow on a busy machine.
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = entry_point(argv)
        except SystemExit as exit_:
            code = exit_.code
    return Outcome(int(code or 0), out.getvalue(), err.getvalue())


def harness_matrix(*args: str, cwd: Path) -> Outcome:
    """`harness matrix matrix.yaml ARGS...` run from `cwd`."""
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        return _in_process(harness_main, ["matrix", "matrix.yaml", *args])
    finally:
        os.chdir(previous)


def pipeline_text(fmt: str, *args: str, cwd: Path) -> str:
    """What `harness matrix matrix.yaml --format FMT ARGS...` prints; it must succeed."""
    done = harness_matrix("--format", fmt, *args, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return done.stdout


def pipeline(fmt: str, *args: str, cwd: Path) -> dict:
    return yaml.safe_load(pipeline_text(fmt, *args, cwd=cwd))


def schema_check(path: Path, fmt: str) -> Outcome:
    """check-jsonschema on one file against the published schema of the CI system `fmt`."""
    return _in_process(check_jsonschema.main, ["--builtin-schema", SCHEMAS[fmt], str(path)])
