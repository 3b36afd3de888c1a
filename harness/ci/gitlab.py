"""GitLab CI: a child pipeline, one job per cell on runners with its device's tags, then a report job.

`.gitlab-ci.yml` runs `harness matrix --format gitlab` in a plan job and triggers what it printed as a child
pipeline (`trigger: include: artifact:`), so the jobs always follow matrix.yaml.
"""

from __future__ import annotations

from typing import Any

from harness.ci.cell_jobs import JOB_ENV, REPORT_DIR, CellJob, ReportJob, no_place_to_run

CELLS_STAGE = "cells"
REPORT_STAGE = "report"
REPORT_JOB = "report"
# GitLab refuses a job whose `needs:` lists more jobs than its ci_max_needs setting, 50 by default. Beyond
# that the report job waits for the whole cells stage instead, and downloads the same artifacts.
MAX_NEEDS = 50


def cell_job(job: CellJob) -> dict[str, Any]:
    """The job that runs one cell on a runner with its device's tags and keeps its results."""
    cell = job.cell
    # The matrix's `gitlab: {tags: [...]}` of the cell's device (schema-checked: tags is a non-empty list).
    tags: list[str] = cell.ci_placement.get("gitlab", {}).get("tags", [])
    if not tags:
        hint = "naming the tags of runners with its hardware and a Docker engine"
        raise no_place_to_run(cell, "GitLab runner tags", "gitlab: {tags: [...]}", hint)
    entry: dict[str, Any] = {
        "stage": CELLS_STAGE,
        "tags": list(tags),
        "timeout": f"{job.timeout_minutes} minutes",
        "script": job.commands(),
        "artifacts": {
            "name": job.artifact,
            "when": "always",
            "paths": [f"{job.results_dir}/"],
            "expire_in": "14 days",
        },
    }
    if not cell.required:
        entry["allow_failure"] = True
    return entry


def report_job(jobs: list[CellJob], report: ReportJob) -> dict[str, Any]:
    """The job after every cell: merge their results strictly; its JUnit shows in merge requests."""
    entry: dict[str, Any] = {
        "stage": REPORT_STAGE,
        # Merge whatever the cells left, also when some failed.
        "when": "always",
        "script": [*report.install_commands(), report.report_command()],
        "artifacts": {
            "name": "report",
            "when": "always",
            "paths": [f"{REPORT_DIR}/"],
            "reports": {"junit": f"{REPORT_DIR}/junit.xml"},
            "expire_in": "30 days",
        },
    }
    if len(jobs) <= MAX_NEEDS:
        entry["needs"] = [{"job": job.cell.id, "artifacts": True} for job in jobs]
    return entry


def gitlab_pipeline(jobs: list[CellJob], report: ReportJob) -> dict[str, Any]:
    """The child pipeline: stages, the cells' jobs in matrix order, then the report job."""
    pipeline: dict[str, Any] = {"stages": [CELLS_STAGE, REPORT_STAGE], "variables": dict(JOB_ENV)}
    pipeline.update({job.cell.id: cell_job(job) for job in jobs})
    pipeline[REPORT_JOB] = report_job(jobs, report)
    return pipeline
