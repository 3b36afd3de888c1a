"""action.yml, the composite action other repositories use: it runs what generated CI runs, with the
matrix's own install lines and the stock image's torch, and the template's workflow passes it what the
planned fan-out gives."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from github_runs import REPO_ROOT

from harness.ci.cell_jobs import CellJob
from harness.ci.github import matrix_entry
from harness.config.matrix import load_matrix
from harness.running.images import DEVICE_IMAGES

ACTION = yaml.safe_load((REPO_ROOT / "action.yml").read_text())
TEMPLATE = REPO_ROOT / "examples" / "engine-template"


def step(name: str) -> dict:
    return next(s for s in ACTION["runs"]["steps"] if s.get("name") == name)


def test_the_action_runs_a_cell_as_every_generated_job_does():
    matrix = load_matrix(TEMPLATE / "matrix.yaml")
    job = CellJob(matrix.cells[0], "matrix.yaml", matrix.root)
    generated = job.run_command().replace(job.cell.id, "$CELL").replace("matrix.yaml", "$MATRIX")
    script = step("harness run")["run"].replace('"$MATRIX"', "$MATRIX").replace('"$CELL"', "$CELL")
    script = script.replace('"results/$CELL"', "results/$CELL")
    assert f"{generated} -- $PYTEST_ARGS" in script
    assert step("Upload the cell's results")["with"]["name"] == "results-${{ inputs.cell }}"


def test_the_actions_default_torch_is_the_stock_cpu_images():
    cpu = DEVICE_IMAGES["cpu"].build_args
    inputs = ACTION["inputs"]
    assert (inputs["torch-version"]["default"], inputs["torch-index-url"]["default"]) == (
        cpu["TORCH_VERSION"],
        cpu["TORCH_INDEX_URL"],
    )


def test_the_template_workflow_uses_the_action_with_what_the_fan_out_plans():
    workflow = yaml.safe_load((TEMPLATE / ".github" / "workflows" / "comm-harness.yml").read_text())
    matrix = load_matrix(TEMPLATE / "matrix.yaml")
    entry = matrix_entry(CellJob(matrix.cells[0], "matrix.yaml", matrix.root, ("comm-harness==0.1.0",)))
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    uses = [s for s in steps if "comm-harness@" in s.get("uses", "")]
    assert len(uses) == 2 and {s["with"].get("command", "run") for s in uses} == {"run", "report"}
    for use in uses:
        assert set(use["with"]) <= set(ACTION["inputs"]), use["with"]
        for value in use["with"].values():
            for key in re.findall(r"matrix\.(\w+)", str(value)):
                assert key in entry, f"{key} is not in the planned matrix entry"


def test_the_report_is_strict_and_keeps_the_summary():
    script = step("harness report")["run"]
    assert "harness report artifacts --matrix" in script and "--markdown report/summary.md" in script
    assert ACTION["inputs"]["strict"]["default"] == "true"
    assert step("Step summary")["run"] == 'cat report/summary.md >> "$GITHUB_STEP_SUMMARY"'


def test_the_action_steps_lint_helper_keeps_every_input(tmp_path: Path):
    import importlib.util

    path = REPO_ROOT / ".ci" / "action-as-workflow.py"
    spec = importlib.util.spec_from_file_location("action_as_workflow", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    workflow = module.action_as_workflow(ACTION)
    assert set(workflow["on"]["workflow_call"]["inputs"]) == set(ACTION["inputs"])
    assert workflow["jobs"]["action"]["steps"] == ACTION["runs"]["steps"]


def test_the_cached_image_is_restored_and_stored_under_one_key_before_the_cell_runs():
    restore, save = step("Restore the image"), step("Save the image to the cache")
    assert restore["uses"].startswith("actions/cache/restore@")
    assert save["uses"].startswith("actions/cache/save@")
    assert restore["with"] == save["with"]
    assert "${{ steps.image.outputs.key }}" in restore["with"]["key"]
    names = [s.get("name") for s in ACTION["runs"]["steps"]]
    # Saved before `harness run`: a failing cell still fills the cache; loaded only on a hit.
    assert names.index("Save the image to the cache") < names.index("harness run")
    assert "cache-hit == 'true'" in step("Load the image")["if"]
    assert "cache-hit != 'true'" in step("Build the image for the cache")["if"]
    assert ACTION["inputs"]["cache-image"]["default"] == "auto"
