"""`harness report`: results of cells run apart (two real `harness run`s) merged into one report."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET

import pytest
from github_runs import run_harness

# Two real `harness run`s (the session's two_runs): end to end. Merging and rendering on synthetic result
# directories is in the default tier (tests/harness/test_scheduler_and_results.py).
pytestmark = pytest.mark.e2e


def report(two_runs, *args: str, **env: str):
    return run_harness("report", *args, cwd=two_runs.root, **env)


def test_two_run_directories_merge_into_one_summary(two_runs):
    done = report(
        two_runs,
        "results/cpu-gloo-ws1",
        "results/cpu-gloo-ws2",
        "--markdown", "merged/summary.md",
        "--junit", "merged/junit.xml",
        "--json", "merged/summary.json",
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr  # a cell failed
    merged = two_runs.root / "merged"
    summary = json.loads((merged / "summary.json").read_text())
    cells = {cell["id"]: cell for cell in summary["cells"]}
    assert list(cells) == ["cpu-gloo-ws1", "cpu-gloo-ws2"]
    assert cells["cpu-gloo-ws1"]["status"] == "passed" and cells["cpu-gloo-ws2"]["status"] == "failed"
    assert cells["cpu-gloo-ws1"]["fingerprint"]["torch"]
    # Paths in the JSON are relative to it, so the merged directory can travel as an artifact.
    assert (merged / cells["cpu-gloo-ws2"]["results_dir"] / "junit.xml").is_file()
    [failure] = summary["failures"]
    assert failure["cell"] == "cpu-gloo-ws2"
    assert failure["test"] == "tests/test_tiny.py::test_fails_on_rank_one"
    assert failure["ranks"] == [1] and failure["world_size"] == 2
    assert failure["file"] == "tests/test_tiny.py" and failure["line"] == 13
    assert summary["exit_code"] == 1

    markdown = (merged / "summary.md").read_text()
    assert "| cpu | ✅ passed: 2 passed" in markdown and "❌ failed: 1 failed, 1 passed" in markdown
    assert "### cpu-gloo-ws2 · `tests/test_tiny.py::test_fails_on_rank_one` · rank 1 of 2" in markdown
    assert "rank 1 disagrees: 50% <off>, a,b: c" in markdown
    assert "| cpu-gloo-ws1 | " in markdown.split("## Environments")[1]

    suites = ET.parse(merged / "junit.xml").getroot().findall("testsuite")
    assert [suite.get("name") for suite in suites] == ["cpu-gloo-ws1", "cpu-gloo-ws2"]
    assert [suite.get("failures") for suite in suites] == ["0", "1"]
    assert "FAILED cpu-gloo-ws2 tests/test_tiny.py::test_fails_on_rank_one [rank 1 of 2]" in done.stdout


def test_artifact_layout_a_directory_of_run_directories(two_runs):
    done = report(two_runs, "results", "--json", "all.json")
    assert done.returncode == 1, done.stderr
    summary = json.loads((two_runs.root / "all.json").read_text())
    assert [cell["id"] for cell in summary["cells"]] == ["cpu-gloo-ws1", "cpu-gloo-ws2"]


def test_a_single_cell_directory_is_read_from_its_own_files(two_runs):
    done = report(two_runs, "results/cpu-gloo-ws2/cpu-gloo-ws2", "--json", "cell.json")
    assert done.returncode == 1, done.stderr
    [cell] = json.loads((two_runs.root / "cell.json").read_text())["cells"]
    assert cell["id"] == "cpu-gloo-ws2" and cell["status"] == "failed"
    assert cell["counts"] == {
        **{"passed": 1, "failed": 1, "skipped": 0, "errors": 0, "not_run": 0},
        **{"flaky": 0, "quarantined": 0, "known_gaps": 0},
    }
    assert cell["fingerprint"]["cell"] == "cpu-gloo-ws2"


def test_passing_results_exit_0(two_runs):
    assert report(two_runs, "results/cpu-gloo-ws1").returncode == 0


def test_expected_cells_missing_from_the_inputs(two_runs):
    # cpu-gloo-ws2 is required and its results are not passed: its job "died".
    done = report(two_runs, "results/cpu-gloo-ws1", "--matrix", "matrix.yaml", "--json", "m.json")
    assert done.returncode == 1
    cells = {c["id"]: c for c in json.loads((two_runs.root / "m.json").read_text())["cells"]}
    assert cells["cpu-gloo-ws2"]["missing"] and cells["cpu-gloo-ws2"]["status"] == "error"
    assert "no results" in cells["cpu-gloo-ws2"]["reason"]
    assert cells["xpu-xccl-ws1"]["missing"] and not cells["xpu-xccl-ws1"]["required"]
    strict = report(two_runs, "results/cpu-gloo-ws1", "--matrix", "matrix.yaml", "--required", "--strict")
    assert strict.returncode == 3
    assert "--strict: required cells did not run or errored: cpu-gloo-ws2" in strict.stdout
    # The required cells all there, one of them failing: a failure, not a strict violation.
    assert report(two_runs, "results", "--matrix", "matrix.yaml", "--required", "--strict").returncode == 1


def test_the_same_cell_twice_is_taken_once_and_noted(two_runs):
    done = report(two_runs, "results/cpu-gloo-ws1", "results/cpu-gloo-ws1", "--json", "twice.json")
    assert done.returncode == 0
    summary = json.loads((two_runs.root / "twice.json").read_text())
    assert [cell["id"] for cell in summary["cells"]] == ["cpu-gloo-ws1"]
    assert "cpu-gloo-ws1 is in" in summary["notes"][0]


def test_annotations_in_github_actions_only(two_runs):
    quiet = report(two_runs, "results/cpu-gloo-ws2")
    assert "::error" not in quiet.stdout
    done = report(two_runs, "results/cpu-gloo-ws2", GITHUB_ACTIONS="true")
    [line] = [line for line in done.stdout.splitlines() if line.startswith("::error")]
    title = "cpu-gloo-ws2%3A tests/test_tiny.py%3A%3Atest_fails_on_rank_one (rank 1 of 2)"
    # The message is the exception line, as pytest's JUnit writes it: pytest.fail's "Failed: ...".
    message = "Failed: rank 1 of 2 failed"
    assert line.startswith(f"::error file=tests/test_tiny.py,line=13,title={title}::{message}")
    assert "50%25 <off>, a,b: c%0A" in line  # the message: % and newlines escaped, ':' and ',' kept


def test_bad_inputs_exit_2_saying_which_and_why(two_runs, tmp_path):
    (tmp_path / "empty").mkdir()
    done = run_harness("report", str(tmp_path / "empty"), cwd=tmp_path)
    assert done.returncode == 2
    assert f"{tmp_path / 'empty'}: no results there" in done.stderr and "Traceback" not in done.stderr
    assert run_harness("report", "nowhere", cwd=tmp_path).returncode == 2
    broken = tmp_path / "broken"
    shutil.copytree(two_runs.passing, broken)
    (broken / "summary.json").write_text("{not json")
    done = run_harness("report", str(broken), cwd=tmp_path)
    assert done.returncode == 2 and "not a readable summary.json" in done.stderr
    done = run_harness("report", str(two_runs.passing), "--cell", "cpu*", cwd=tmp_path)
    assert done.returncode == 2 and "--matrix" in done.stderr
