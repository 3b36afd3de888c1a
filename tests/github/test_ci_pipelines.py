"""`harness matrix --format buildkite|gitlab`: the same cells as GitHub's fan-out, each on its device's
agents or runners, running the same command, kept as artifacts, merged by a strict report."""

from __future__ import annotations

import re
import shlex

import pytest
import yaml
from github_runs import REPO_ROOT, write_project
from pipelines import CI_MATRIX, harness_matrix, pipeline, pipeline_text, schema_check, write_ci_project

from harness.commands.cli import build_parser

RAW_MATRIX = yaml.safe_load((REPO_ROOT / "matrix.yaml").read_text())
# The line of .github/workflows/ci.yml that runs a cell; the other systems must run the very same command.
GITHUB_CELL_JOB = yaml.safe_load((REPO_ROOT / ".github/workflows/ci.yml").read_text())["jobs"]["cells"]
GITHUB_RUN = next(s["run"] for s in GITHUB_CELL_JOB["steps"] if s.get("run", "").startswith("harness run "))
TINY_WITHOUT_CI = "version: 1\ndefaults: {tests: [tests/test_tiny.py]}\ndevices:\n  cpu: {world_sizes: [2]}\n"


def ids(*args: str) -> list[str]:
    done = harness_matrix("--format", "ids", *args, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def buildkite_cells(document: dict) -> list[dict]:
    return [step for step in document["steps"] if step["key"] != "report"]


def gitlab_cells(document: dict) -> dict[str, dict]:
    return {name: job for name, job in document.items() if name not in ("stages", "variables", "report")}


def report_words(commands: list[str]) -> list[str]:
    (command,) = [c for c in commands if c.startswith("harness report ")]
    return shlex.split(command)


def github_command(cell: str) -> list[str]:
    return shlex.split(GITHUB_RUN.replace("$CELL", cell))


@pytest.mark.parametrize(
    "args", [(), ("--required", "--cell", "cuda-*")], ids=["every cell", "required cuda cells"]
)
@pytest.mark.parametrize("fmt", ["buildkite", "gitlab"])
def test_the_pipeline_is_valid_under_the_published_schema(fmt, args, tmp_path):
    path = tmp_path / f"{fmt}.yml"
    path.write_text(pipeline_text(fmt, *args, cwd=REPO_ROOT))
    done = schema_check(path, fmt)
    assert done.returncode == 0, done.stdout + done.stderr
    # The check is live: the same pipeline with one value of the wrong type fails it.
    document = yaml.safe_load(path.read_text())
    first_cell = document["steps"][0] if fmt == "buildkite" else document[ids(*args)[0]]
    first_cell["soft_fail" if fmt == "buildkite" else "allow_failure"] = "sometimes"
    path.write_text(yaml.safe_dump(document))
    assert schema_check(path, fmt).returncode == 1


# matrix.yaml's cuda cells that do not gate a release: ws8 (rarely lent) and ws2 over two emulated nodes.
NOT_REQUIRED_CUDA = ("cuda-nccl-ws8", "cuda-nccl-ws2-n2")


def test_buildkite_one_step_per_cell_on_its_device_agents_then_a_strict_report():
    document = pipeline("buildkite", cwd=REPO_ROOT)
    cells = buildkite_cells(document)
    assert [step["label"] for step in cells] == ids()
    for step in cells:
        cell = step["label"]
        device = cell.split("-")[0]
        assert step["key"] == cell
        assert step["agents"] == RAW_MATRIX["devices"][device]["buildkite"]["agents"]
        assert shlex.split(step["commands"][-1]) == github_command(cell)
        build = f"harness images build {device} --matrix matrix.yaml"
        if device == "cuda":
            # The job's log says how the runner gives the container its GPUs (NVIDIA runtime or devices).
            plan = f"harness plan matrix.yaml --cell {cell} --executor docker"
            assert step["commands"][-3:-1] == [build, plan]
        else:
            assert step["commands"][-2] == build
        assert step["artifact_paths"] == [f"results/{cell}/**/*"]
        assert step["timeout_in_minutes"] == 90
    # Cells that do not gate a release fail soft: xpu, and cuda at world size 8.
    soft = [step["key"] for step in cells if step.get("soft_fail")]
    assert soft == [c for c in ids() if c.startswith("xpu-") or c in NOT_REQUIRED_CUDA]
    report = document["steps"][-1]
    assert report["key"] == "report" and report["depends_on"] == ids()
    assert report["allow_dependency_failure"] is True
    download = next(c for c in report["commands"] if c.startswith("buildkite-agent artifact download"))
    assert shlex.split(download)[3:5] == ["results/**/*", "."]
    assert report_words(report["commands"])[:5] == ["harness", "report", "results", "--matrix", "matrix.yaml"]
    assert "--strict" in report_words(report["commands"])
    assert report["artifact_paths"] == ["report/**/*"]


def test_gitlab_one_job_per_cell_with_its_device_tags_then_a_report_that_needs_them():
    document = pipeline("gitlab", cwd=REPO_ROOT)
    assert document["stages"] == ["cells", "report"]
    cells = gitlab_cells(document)
    assert list(cells) == ids()
    for cell, job in cells.items():
        device = cell.split("-")[0]
        assert job["tags"] == RAW_MATRIX["devices"][device]["gitlab"]["tags"]
        assert shlex.split(job["script"][-1]) == github_command(cell)
        assert job["artifacts"]["paths"] == [f"results/{cell}/"]
        assert job["artifacts"]["when"] == "always"
        assert job["timeout"] == "90 minutes"
    allowed = [cell for cell, job in cells.items() if job.get("allow_failure")]
    assert allowed == [c for c in ids() if c.startswith("xpu-") or c in NOT_REQUIRED_CUDA]
    report = document["report"]
    assert report["stage"] == "report" and report["when"] == "always"
    assert report["needs"] == [{"job": cell, "artifacts": True} for cell in ids()]
    assert "--strict" in report_words(report["script"])
    assert report["artifacts"]["reports"]["junit"] == "report/junit.xml"


@pytest.mark.parametrize(
    "args",
    [("--cell", "cpu-gloo-ws1", "--cell", "xpu-*ws2"), ("--cell", "cuda-*", "--required")],
    ids=["patterns", "required"],
)
def test_cell_and_required_select_the_same_cells_on_every_system_and_in_the_report(args):
    selected = ids(*args)
    github = harness_matrix("--format", "github", *args, cwd=REPO_ROOT)
    assert [entry["cell"] for entry in yaml.safe_load(github.stdout)["include"]] == selected
    buildkite = pipeline("buildkite", *args, cwd=REPO_ROOT)
    gitlab = pipeline("gitlab", *args, cwd=REPO_ROOT)
    assert [step["key"] for step in buildkite_cells(buildkite)] == selected
    assert list(gitlab_cells(gitlab)) == selected
    # The report expects exactly the selected cells: the same selection options, after --matrix.
    for commands in (buildkite["steps"][-1]["commands"], gitlab["report"]["script"]):
        words = report_words(commands)
        assert words[5 : 5 + len(args)] == list(args)


def test_every_dollar_in_the_buildkite_pipeline_is_escaped_from_upload_interpolation():
    text = pipeline_text("buildkite", cwd=REPO_ROOT)
    committed = (REPO_ROOT / ".buildkite" / "pipeline.yml").read_text()
    for name, content in (("generated", text), (".buildkite/pipeline.yml", committed)):
        lone = re.findall(r"(?<!\$)\$(?!\$)", content.replace("$$", ""))
        assert not lone, f"{name}: `buildkite-agent pipeline upload` would interpolate {lone}"


@pytest.mark.parametrize(
    "fmt, message",
    [
        ("buildkite", "cell cpu-gloo-ws2 has no Buildkite agents; add `buildkite: {agents:"),
        ("gitlab", "cell cpu-gloo-ws2 has no GitLab runner tags; add `gitlab: {tags: [...]}`"),
    ],
)
def test_a_cell_without_agents_or_tags_is_an_error_naming_where(tmp_path, fmt, message):
    write_project(tmp_path, TINY_WITHOUT_CI)
    done = harness_matrix("--format", fmt, cwd=tmp_path)
    assert done.returncode == 2
    assert f"matrix.yaml:4: {message}" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("fmt", ["github", "buildkite", "gitlab"])
def test_a_cell_without_an_image_gets_no_job_that_could_only_skip_it(tmp_path, fmt):
    # The job runs --executor docker, which skips a device without `image:`: refused, naming the fix.
    write_ci_project(tmp_path, CI_MATRIX.replace("    image: {}\n", "", 1))
    done = harness_matrix("--format", fmt, cwd=tmp_path)
    assert done.returncode == 2, done.stdout
    assert "cell cpu-gloo-ws1 has no `image:`; add `image: {}` under devices.cpu" in done.stderr


def test_bad_buildkite_and_gitlab_keys_are_reported_at_their_line(tmp_path):
    write_project(
        tmp_path,
        """
        version: 1
        defaults: {tests: [tests/test_tiny.py]}
        devices:
          cpu:
            world_sizes: [2]
            buildkite: {agent: {queue: cpu}}
            gitlab:
              tags: []
        """,
    )
    done = harness_matrix("--format", "ids", cwd=tmp_path)
    assert done.returncode == 2
    unknown = "devices.cpu.buildkite.agent: unknown key 'agent' (did you mean 'agents'?)"
    assert f"matrix.yaml:6: {unknown}" in done.stderr
    assert "matrix.yaml:6: devices.cpu.buildkite: missing required key: agents" in done.stderr
    assert "matrix.yaml:8: devices.cpu.gitlab.tags: must not be empty" in done.stderr


def test_a_cell_id_with_a_dot_gets_a_buildkite_key_with_an_underscore(tmp_path):
    write_ci_project(tmp_path, CI_MATRIX + "axes: {torch: ['2.8']}\n")
    steps = buildkite_cells(pipeline("buildkite", "--cell", "cpu-gloo-ws1-*", cwd=tmp_path))
    assert [(step["key"], step["label"]) for step in steps] == [("cpu-gloo-ws1-2_8", "cpu-gloo-ws1-2.8")]
    write_ci_project(tmp_path, CI_MATRIX + "axes: {torch: ['2.8', '2_8']}\n")
    done = harness_matrix("--format", "buildkite", cwd=tmp_path)
    assert done.returncode == 2
    assert "cells cpu-gloo-ws1-2.8 and cpu-gloo-ws1-2_8 get the same Buildkite step key" in done.stderr


def test_gitlab_report_waits_for_the_stage_when_needs_would_exceed_gitlabs_limit(tmp_path):
    sizes = ", ".join(str(n) for n in range(1, 52))
    write_ci_project(tmp_path, CI_MATRIX.replace("world_sizes: [1, 2]", f"world_sizes: [{sizes}]"))
    document = pipeline("gitlab", cwd=tmp_path)
    assert len(gitlab_cells(document)) == 52
    assert "needs" not in document["report"] and document["report"]["stage"] == "report"


@pytest.mark.parametrize("fmt", ["buildkite", "gitlab"])
def test_every_harness_command_of_the_pipeline_parses_with_the_real_cli(fmt):
    document = pipeline(fmt, cwd=REPO_ROOT)
    if fmt == "buildkite":
        scripts = [step["commands"] for step in document["steps"]]
    else:
        scripts = [job["script"] for job in document.values() if isinstance(job, dict) and "script" in job]
    commands = [command for script in scripts for command in script if command.startswith("harness ")]
    assert {shlex.split(command)[1] for command in commands} == {"images", "plan", "run", "report"}
    parser = build_parser()
    for command in commands:
        parser.parse_args(shlex.split(command)[1:])


@pytest.mark.parametrize(
    "fmt, system", [("github", "GitHub"), ("buildkite", "Buildkite"), ("gitlab", "GitLab CI")]
)
def test_a_selection_of_no_cell_is_an_error_not_an_empty_pipeline(fmt, system):
    done = harness_matrix("--format", fmt, "--cell", "xpu-*", "--required", cwd=REPO_ROOT)
    assert done.returncode == 2 and done.stdout == ""
    message = f"no cell selected, so the {system} fan-out would be empty; check --cell and --required"
    assert message in done.stderr
