"""The workflows parse, every `harness` command in them is one the CLI accepts, every matrix key exists."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml
from github_runs import REPO_ROOT, run_harness

from harness.ci.cell_jobs import artifact_name
from harness.commands.cli import build_parser

WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
# What the workflows' shell variables stand for when their commands are checked.
SHELL_VALUES = {
    "CELL": "cpu-gloo-ws2",
    "DEVICE": "cpu",
    "IMAGE": "comm-harness/cpu:0123456789ab",
    "FLOORS": "floors.yaml",
    "RUNNER_TEMP": "/tmp/runner",
}
# A harness command at the start of a line or inside $(...); `\` continuations are joined first.
HARNESS_COMMAND = re.compile(r"(?m)(?:^\s*|\$\()harness\s+([^\n)]*)")
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)


def load(path: Path) -> dict:
    # PyYAML reads `on:` as True (YAML 1.1); GitHub reads it as the key "on".
    return yaml.safe_load(path.read_text())


def run_scripts(workflow: dict) -> list[str]:
    return [step["run"] for job in workflow["jobs"].values() for step in job["steps"] if "run" in step]


def harness_commands(path: Path) -> list[list[str]]:
    """Every harness command line of a workflow, with its shell variables filled in and arrays left out."""
    commands = []
    for script in run_scripts(load(path)):
        for match in HARNESS_COMMAND.finditer(script.replace("\\\n", " ")):
            words = [word for word in shlex.split(match.group(1)) if "[@]" not in word]
            commands.append([re.sub(r"\$\{?(\w+)\}?", lambda m: SHELL_VALUES[m[1]], w) for w in words])
    return commands


def test_both_workflows_exist_and_parse():
    assert [path.name for path in WORKFLOWS] == ["ci.yml", "qualify.yml"]
    for path in WORKFLOWS:
        workflow = load(path)
        assert workflow["jobs"] and True in workflow  # `on:` is there


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_every_harness_command_parses_with_the_real_cli(path):
    parser = build_parser()
    commands = harness_commands(path)
    assert commands
    for words in commands:
        try:
            parser.parse_args(words)
        except SystemExit:
            pytest.fail(f"{path.name}: `harness {' '.join(words)}` is not accepted by the harness CLI")


def test_the_fan_out_uses_plan_run_report_and_qualify():
    used = {words[0] for path in WORKFLOWS for words in harness_commands(path)}
    assert {"matrix", "images", "run", "report", "qualify"} <= used


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_cells_fan_out_from_the_plan_job(path):
    jobs = load(path)["jobs"]
    cells = jobs["cells"]
    assert cells["needs"] == "plan"
    assert cells["strategy"]["fail-fast"] is False
    assert cells["strategy"]["matrix"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    assert cells["runs-on"] == "${{ matrix.runs-on }}"
    plan_script = "\n".join(run_scripts({"jobs": {"plan": jobs["plan"]}}))
    assert 'echo "matrix=$matrix" >> "$GITHUB_OUTPUT"' in plan_script
    assert jobs["plan"]["outputs"]["matrix"] == "${{ steps.plan.outputs.matrix }}"
    upload = next(s for s in cells["steps"] if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()" and upload["with"]["name"] == "${{ matrix.artifact }}"
    report = jobs["report"]
    assert report["needs"] == ["plan", "cells"] and report["if"].startswith("always()")
    download = next(s for s in report["steps"] if s.get("uses", "").startswith("actions/download-artifact"))
    pattern = download["with"]["pattern"]
    assert re.fullmatch(pattern.replace("*", ".*"), artifact_name("cpu-gloo-ws2"))


def test_every_matrix_key_a_workflow_reads_is_in_the_plan_output():
    done = run_harness("matrix", "matrix.yaml", "--format", "github", cwd=REPO_ROOT)
    keys = set().union(*(entry.keys() for entry in json.loads(done.stdout)["include"]))
    for path in WORKFLOWS:
        for expression in EXPRESSION.findall(path.read_text()):
            for key in re.findall(r"\bmatrix\.([\w-]+)", expression):
                assert key in keys, f"{path.name} reads matrix.{key}, which `harness matrix` does not print"


def test_report_jobs_write_the_step_summary_and_qualify_is_strict():
    for path in WORKFLOWS:
        report_steps = load(path)["jobs"]["report"]["steps"]
        summary = next(s for s in report_steps if "GITHUB_STEP_SUMMARY" in s.get("run", ""))
        assert summary["if"].startswith("always()")
    qualify = harness_commands(REPO_ROOT / ".github" / "workflows" / "qualify.yml")
    assert any(words[0] == "report" and "--strict" in words for words in qualify)
    assert any(words[0] == "matrix" and "--required" in words for words in qualify)
    assert (REPO_ROOT / SHELL_VALUES["FLOORS"]).is_file()
    triggers = load(REPO_ROOT / ".github" / "workflows" / "qualify.yml")[True]
    assert triggers["push"]["tags"] == ["v*"] and "workflow_dispatch" in triggers
