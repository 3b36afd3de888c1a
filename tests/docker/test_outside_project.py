"""The harness in someone else's repository: built as a wheel and an sdist, installed outside any checkout,
running examples/engine-template (an engine with its own communicator, adapter entry point, suite and matrix).

Locally: a fresh venv (--system-site-packages, so this machine's CPU torch is reused) gets the wheel built
from the sdist and the template, and runs a cell. In CI: the shell steps of the generated Buildkite and
GitLab jobs run verbatim, each in a fresh copy of the template and a fresh venv, with a directory holding the
wheel standing in for the package index; their cells pass in Docker, and the report over both passes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = REPO_ROOT / "examples" / "engine-template"
HARNESS_IN_WHEEL = (
    "harness/resources/docker/cpu.Dockerfile",
    "harness/resources/docker/.dockerignore",
    "harness/resources/docker/requirements.txt",
    "harness/resources/docker/torch-from-base.sh",
    "harness/resources/matrix.schema.json",
)


def outside_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: no PYTHONPATH onto this checkout, nothing of it in the way."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **extra}


def run(command: list[str] | str, cwd: Path, env: dict[str, str], timeout: int = 1200) -> str:
    shell = isinstance(command, str)
    done = subprocess.run(
        command, cwd=cwd, env=env, shell=shell, executable="/bin/bash" if shell else None,
        capture_output=True, text=True, timeout=timeout,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{command!r} exited {done.returncode}:\n{output[-6000:]}"
    return output


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python -m build`: the sdist, and the wheel built from it (so both are proven)."""
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO_ROOT)], REPO_ROOT, outside_env())
    wheels = list(out.glob("comm_harness-*.whl"))
    assert len(wheels) == 1 and list(out.glob("comm_harness-*.tar.gz"))
    names = set(zipfile.ZipFile(wheels[0]).namelist())
    assert not set(HARNESS_IN_WHEEL) - names, "the wheel lacks the stock images' files"
    return out


def template_copy(parent: Path, name: str) -> Path:
    """The template as an engine's own repository: outside any checkout, readable by a container's user."""
    project = parent / name
    shutil.copytree(TEMPLATE, project, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", "results"))
    for path in [parent, *project.rglob("*"), project]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return project


def test_a_fresh_venv_with_the_wheel_runs_the_template_on_the_host(dist, tmp_path):
    project = template_copy(tmp_path, "myengine")
    env = outside_env()
    run([sys.executable, "-m", "venv", "--system-site-packages", ".venv"], project, env)
    python = str(project / ".venv" / "bin" / "python")
    wheel = next(dist.glob("*.whl"))
    run([python, "-m", "pip", "install", "-q", str(wheel), "-e", "."], project, env)
    where = run([python, "-c", "import harness; print(harness.__file__)"], project, env)
    assert str(project / ".venv") in where, f"the harness was imported from elsewhere: {where}"
    out = run(
        [str(project / ".venv" / "bin" / "harness"), "run", "matrix.yaml", "--executor", "local",
         "--cell", "cpu-gloo-ws2-*", "--out", "results"],
        project, env,
    )
    assert "PASSED: 3 passed" in out, out


def generated_job(project: Path, system: str, cell: str) -> list[str]:
    """The shell steps `harness matrix --format SYSTEM` writes for `cell`, as the CI's shell gets them."""
    harness = [sys.executable, "-m", "harness.commands.cli"]
    pipeline = yaml.safe_load(
        run([*harness, "matrix", "matrix.yaml", "--format", system], project, {**os.environ})
    )
    if system == "buildkite":
        step = next(step for step in pipeline["steps"] if step.get("label") == cell)
        # `buildkite-agent pipeline upload` turns `$$` into `$` before the agent's shell runs the step.
        return [command.replace("$$", "$") for command in step["commands"]]
    return pipeline[cell]["script"]


def test_generated_ci_jobs_install_the_harness_from_the_matrix_and_pass(dist, tmp_path, cpu_image):
    """The template's matrix says `harness: comm-harness==0.1.0`; a wheel directory answers for the index."""
    jobs = {"buildkite": "cpu-gloo-ws1-myengine", "gitlab": "cpu-gloo-ws2-myengine"}
    env = outside_env(CI="true", PIP_FIND_LINKS=f"{dist} {os.environ.get('PIP_FIND_LINKS', '')}".strip())
    results = tmp_path / "gathered" / "results"
    for system, cell in jobs.items():
        project = template_copy(tmp_path, system)
        steps = generated_job(project, system, cell)
        assert "python -m pip install comm-harness==0.1.0" in steps, steps
        assert "python -m pip install -e ." in steps, steps
        assert not any(step.startswith("python -m pip install -e .") and step != "python -m pip install -e ."
                       for step in steps)
        out = run("set -e\n" + "\n".join(steps), project, env, timeout=1500)
        assert f"[{cell}] PASSED: 3 passed" in out, out[-4000:]
        shutil.copytree(project / "results" / cell, results / cell)
    reporter = template_copy(tmp_path, "report")
    shutil.copytree(results, reporter / "results")
    steps = generated_job(reporter, "gitlab", "report")
    run("set -e\n" + "\n".join(steps), reporter, env, timeout=1500)
    merged = json.loads((reporter / "report" / "summary.json").read_text())
    assert {cell["id"]: (cell["status"], cell["counts"]["passed"]) for cell in merged["cells"]} == {
        cell: ("passed", 3) for cell in jobs.values()
    }
