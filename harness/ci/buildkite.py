"""Buildkite (vLLM's CI): a dynamic pipeline, one command step per cell on its device's agents, then a report.

`.buildkite/pipeline.yml` pipes `harness matrix --format buildkite` into `buildkite-agent pipeline upload`,
which replaces `$NAME` in what it uploads with the uploading step's environment: every `$` in a command is
written `$$` here, so that the shell of the cell's step, not the upload, reads it.
"""

from __future__ import annotations

import re
from typing import Any

from harness.ci.cell_jobs import JOB_ENV, REPORT_DIR, RESULTS_DIR, CellJob, ReportJob, no_place_to_run
from harness.common.errors import ConfigurationError

REPORT_KEY = "report"
# A step key holds letters, digits, '_', '-' and ':' only; a cell id may also hold '.'.
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_:-]")


def step_key(cell_id: str) -> str:
    """The step key of a cell: its id, with characters Buildkite refuses in a key replaced by '_'."""
    return _KEY_UNSAFE.sub("_", cell_id)


def _uploaded_as_is(command: str) -> str:
    return command.replace("$", "$$")


def cell_step(job: CellJob) -> dict[str, Any]:
    """The command step that runs one cell on an agent with its device's tags and keeps its results."""
    cell = job.cell
    # The matrix's `buildkite: {agents: {...}}` of the cell's device; a tag's value may be a number.
    agents = cell.ci_placement.get("buildkite", {}).get("agents", {})
    agents = {name: str(value) for name, value in agents.items()}
    if not agents:
        hint = "naming the queue of agents with its hardware"
        raise no_place_to_run(cell, "Buildkite agents", "buildkite: {agents: {queue: ...}}", hint)
    step: dict[str, Any] = {
        "key": step_key(cell.id),
        "label": cell.id,
        "agents": agents,
        "commands": [_uploaded_as_is(command) for command in job.commands()],
        "artifact_paths": [f"{job.results_dir}/**/*"],
        "timeout_in_minutes": job.timeout_minutes,
    }
    if not cell.required:
        # Its failure shows amber, not red, on the build page; the report step still lists it.
        step["soft_fail"] = True
    return step


def report_step(jobs: list[CellJob], report: ReportJob) -> dict[str, Any]:
    """The step after every cell: download their results, merge them strictly, annotate the build."""
    summary = f"{REPORT_DIR}/summary.md"
    commands = [
        *report.install_commands(),
        # No artifact at all: no cell got as far as `harness run`, and the report says which are missing.
        f"buildkite-agent artifact download '{RESULTS_DIR}/**/*' . || echo 'no cell left results'",
        # The summary goes onto the build page whether the report passes or not (a trap keeps the exit code).
        f"trap 'test -f {summary} && buildkite-agent annotate --context comm-harness < {summary}' EXIT",
        report.report_command(),
    ]
    return {
        "key": REPORT_KEY,
        "label": "merged report",
        "depends_on": [step_key(job.cell.id) for job in jobs],
        # Merge whatever the cells left, also when some failed.
        "allow_dependency_failure": True,
        "commands": [_uploaded_as_is(command) for command in commands],
        "artifact_paths": [f"{REPORT_DIR}/**/*"],
    }


def buildkite_pipeline(jobs: list[CellJob], report: ReportJob) -> dict[str, Any]:
    """What `buildkite-agent pipeline upload` reads: the cells' steps in matrix order, then the report."""
    steps = [cell_step(job) for job in jobs]
    first: dict[str, str] = {}
    for job, step in zip(jobs, steps, strict=True):
        other = first.setdefault(step["key"], job.cell.id)
        if other != job.cell.id:
            raise ConfigurationError(
                f"{job.cell.source}: cells {other} and {job.cell.id} get the same Buildkite step key "
                f"{step['key']!r} ('.' becomes '_'); rename an axis value so that they differ"
            )
    return {"env": dict(JOB_ENV), "steps": [*steps, report_step(jobs, report)]}
