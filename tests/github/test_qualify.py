"""`harness qualify`: required cells under --strict, the bench against floors, one qualification record."""

from __future__ import annotations

import json
import subprocess

import pytest
from github_runs import run_harness, write_project

from harness.results.records import load_manifest

pytestmark = pytest.mark.e2e

# Only cpu ws1 is required, and its tests pass there; the xpu cell is neither required nor runnable here.
QUALIFY_MATRIX = """
version: 1
defaults: {tests: [tests/test_tiny.py], timeout: 300, test_timeout: 60, required: false}
devices:
  cpu: {world_sizes: [1, 2], runs_on: [ubuntu-latest]}
  xpu: {world_sizes: [1], runs_on: [self-hosted, gpu-intel]}
include:
  - {device: cpu, world_size: 1, required: true}
"""
# Bus bandwidth at world size 1 is 0 by definition (factor 2(n-1)/n), so a positive floor is always missed.
FLOORS = """
version: 1
floors:
  - {device: cpu, world_size: 1, op: all_reduce, busbw_gbps: 5}
  - {device: cuda, world_size: 4, op: all_reduce, min_bytes: 1G, busbw_gbps: 280}
"""
LENIENT_FLOORS = "version: 1\nfloors:\n  - {device: cpu, world_size: 1, op: all_reduce, busbw_gbps: 0}\n"


def test_qualify_runs_required_cells_benches_and_judges_floors(tmp_path):
    write_project(tmp_path, QUALIFY_MATRIX)
    (tmp_path / "floors.yaml").write_text(FLOORS)
    done = run_harness(
        "qualify", "matrix.yaml", "--executor", "local", "--out", "q", "--quick", "--floors", "floors.yaml",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr  # the floor is missed
    record = json.loads((tmp_path / "q" / "qualification.json").read_text())
    assert record["qualified"] is False and record["strict"] is True
    assert [(c["id"], c["status"]) for c in record["cells"]] == [("cpu-gloo-ws1", "passed")]
    assert record["cells"][0]["fingerprint"]["torch"]
    [bench] = record["bench"]
    assert (bench["device"], bench["world_size"], bench["document"]) == ("cpu", 1, "bench-cpu-ws1.json")
    assert {figure["op"] for figure in bench["figures"]} >= {"all_reduce", "all_gather", "dispatch_combine"}
    missed = bench["floors_missed"]  # one per all_reduce size measured
    assert missed and all(m.startswith("cpu ws1 all_reduce at") and "floors.yaml:4" in m for m in missed)
    markdown = (tmp_path / "q" / "qualification.md").read_text()
    assert "## Bandwidth" in markdown and "❌ floor missed: `cpu ws1 all_reduce" in markdown
    # A floor for a device and world size outside the qualified cells is not this record's business.
    assert "not measured: cuda ws4" not in markdown
    assert "NOT QUALIFIED" in done.stdout
    # The record's manifest: valid, its verdict the exit code's; not a git checkout, so no commit.
    manifest = load_manifest(tmp_path / "q")
    assert manifest["verdict"] == "not qualified" and manifest["commit"] is None
    assert manifest["commands"] == [
        "harness qualify matrix.yaml --executor local --out q --quick --floors floors.yaml"
    ]
    assert manifest["devices"] == ["cpu"] and manifest["supersedes"] == []
    assert manifest["machine"]["torch"] == record["cells"][0]["fingerprint"]["torch"]
    assert "bench cpu ws1: " in manifest["summary"] and "floor miss(es)" in manifest["summary"]

    # The same results judged again by `harness report`, as the qualify workflow's last job does.
    (tmp_path / "lenient.yaml").write_text(LENIENT_FLOORS)
    again = run_harness("report", "q", "--strict", "--floors", "lenient.yaml", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    strict = run_harness(
        "report", "q", "--strict", "--floors", "floors.yaml", "--markdown", "r.md", cwd=tmp_path
    )
    assert strict.returncode == 1 and "BENCH cpu ws1: cpu ws1 all_reduce" in strict.stdout
    # Without --matrix the report expects nothing in particular: every floor no bench measured is listed.
    assert "not measured: cuda ws4 all_reduce" in (tmp_path / "r.md").read_text()

    # A record folder as qualification/ keeps them: the run directory, and the bench JSON beside it.
    (tmp_path / "record").mkdir()
    (tmp_path / "q").rename(tmp_path / "record" / "cells")
    (tmp_path / "record" / "cells" / "bench-cpu-ws1.json").rename(tmp_path / "record" / "bench-cpu-ws1.json")
    beside = run_harness("report", "record", "--floors", "floors.yaml", cwd=tmp_path)
    assert beside.returncode == 1 and "BENCH cpu ws1: cpu ws1 all_reduce" in beside.stdout


def test_qualify_without_a_required_cell_is_bad_input(tmp_path):
    write_project(tmp_path, QUALIFY_MATRIX)
    done = run_harness("qualify", "matrix.yaml", "--cell", "xpu-*", "--executor", "local", cwd=tmp_path)
    assert done.returncode == 2 and "no required cell" in done.stderr


def test_a_broken_floors_file_is_rejected_before_anything_runs(tmp_path):
    write_project(tmp_path, QUALIFY_MATRIX)
    (tmp_path / "floors.yaml").write_text(
        "version: 1\nfloors:\n  - {device: cpu, world_size: 1, op: all_reduce}\n"
    )
    done = run_harness("qualify", "matrix.yaml", "--floors", "floors.yaml", "--out", "q", cwd=tmp_path)
    assert done.returncode == 2 and "floors.yaml:3" in done.stderr
    assert not (tmp_path / "q").exists()


def test_qualify_leaves_out_the_bench_at_world_size_1_unless_a_floor_names_it(tmp_path):
    write_project(tmp_path, QUALIFY_MATRIX)
    (tmp_path / "floors.yaml").write_text(
        "version: 1\nfloors:\n  - {device: cuda, world_size: 4, op: all_reduce, busbw_gbps: 280}\n"
    )
    done = run_harness(
        "qualify", "matrix.yaml", "--executor", "local", "--out", "q", "--floors", "floors.yaml", cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr  # the cuda floor is outside the qualified cells
    assert "cpu world size 1 left out: nothing crosses a link" in done.stdout
    assert not list((tmp_path / "q").glob("bench-*.json"))
    assert "QUALIFIED" in done.stdout and "NOT QUALIFIED" not in done.stdout


def test_qualify_writes_the_record_manifest_with_the_commit_that_ran_and_what_it_supersedes(tmp_path):
    write_project(tmp_path, QUALIFY_MATRIX)
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    for step in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "the project"]):
        subprocess.run([*git, *step], check=True, capture_output=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout
    done = run_harness(
        "qualify", "matrix.yaml", "--executor", "local", "--out", "q", "--supersedes", "2026-11-30-h200-x2",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = load_manifest(tmp_path / "q")
    assert manifest["verdict"] == "qualified" and manifest["supersedes"] == ["2026-11-30-h200-x2"]
    assert (manifest["commit"], manifest["commit_source"]) == (head.strip(), "checkout")
    assert manifest["summary"].endswith("cpu-gloo-ws1 passed; qualified, exit 0")
    assert manifest["harness_version"] and manifest["machine"]["description"].startswith("no GPU, torch ")

    (tmp_path / "matrix.yaml").write_text(QUALIFY_MATRIX + "# changed\n")
    again = run_harness("qualify", "matrix.yaml", "--executor", "local", "--out", "q2", cwd=tmp_path)
    assert again.returncode == 0 and load_manifest(tmp_path / "q2")["commit_source"] == (
        "checkout with uncommitted changes"
    )


def test_qualify_refuses_a_supersedes_that_names_no_record_before_anything_runs(tmp_path):
    write_project(tmp_path, QUALIFY_MATRIX)
    done = run_harness("qualify", "matrix.yaml", "--supersedes", "../old", "--out", "q", cwd=tmp_path)
    assert done.returncode == 2 and "--supersedes '../old': not a record's name" in done.stderr
    assert not (tmp_path / "q").exists()
