"""pytest's habits carried over: `harness --version`, `harness run MATRIX -- ARGS` reaching every cell's
pytest (-k narrowing the cell's keyword, --lf across runs under one --out)."""

from __future__ import annotations

import json

import pytest
from cli_runs import run_harness

import harness
from harness.config.model import Cell
from harness.planning.plan import PlannedCell, oversubscription_warnings
from harness.running.runs import with_pytest_args

MATRIX = """
version: 1
defaults: {tests: [tests/test_flaky.py], timeout: 300, test_timeout: 60}
devices:
  cpu: {world_sizes: [1]}
"""
# Fails while the file `fail-once` exists next to the tests: a failure the user then fixes.
FLAKY_TESTS = """
from pathlib import Path


def test_sometimes():
    assert not (Path(__file__).parent / "fail-once").exists()


def test_always():
    pass


def test_also_always():
    pass
"""


def test_version_is_the_packages(tmp_path):
    done = run_harness("--version", cwd=tmp_path)
    assert (done.returncode, done.stdout.strip()) == (0, f"harness {harness.__version__}")


def test_a_command_other_than_run_refuses_pytest_arguments(tmp_path):
    done = run_harness("plan", "matrix.yaml", "--", "-k", "x", cwd=tmp_path)
    assert done.returncode == 2 and "plan takes no arguments after `--`" in done.stderr


def test_k_and_m_narrow_the_cells_keyword_and_markers_and_the_rest_follow_its_own_arguments():
    cell = Cell("c", "cpu", "gloo", 1, ("tests",), keyword="all_reduce", markers=None)
    narrowed = with_pytest_args(cell, ["-k", "sum", "-mslow", "-x", "--lf"])
    assert narrowed.keyword == "(all_reduce) and (sum)" and narrowed.markers == "slow"
    assert narrowed.pytest_args == ("--forked", "-x", "--lf")
    assert with_pytest_args(cell, []) is cell


@pytest.mark.e2e
def test_pytest_arguments_reach_every_cell_and_lf_reruns_the_last_failures(project):
    path = project(MATRIX)
    tests = path.parent / "tests"
    (tests / "test_flaky.py").write_text(FLAKY_TESTS)
    (tests / "fail-once").write_text("")

    def run(*pytest_args: str) -> dict:
        done = run_harness("run", "--executor", "local", "--out", "out", "--", *pytest_args, cwd=path.parent)
        summary = json.loads((path.parent / "out" / "summary.json").read_text())
        assert summary["exit_code"] == done.returncode, done.stdout + done.stderr
        return summary["cells"][0]["counts"]

    # -k reaches the cell's pytest: one test of three.
    counts = run("-k", "also")
    assert {key: counts[key] for key in ("passed", "failed", "skipped", "errors", "not_run")} == {
        "passed": 1,
        "failed": 0,
        "skipped": 0,
        "errors": 0,
        "not_run": 0,
    }
    assert run()["failed"] == 1
    (tests / "fail-once").unlink()
    # --lf under the same --out: only the test that failed last time runs (and now passes).
    assert run("--lf")["passed"] == 1


HANGING = """
import time


def test_hangs(dist_env):
    time.sleep(600)


def test_fine():
    pass
"""


@pytest.mark.e2e
def test_a_hang_says_timed_out_and_the_matrix_key_on_screen_and_in_the_report(project):
    matrix = MATRIX.replace("test_flaky.py", "test_hang.py").replace("world_sizes: [1]", "world_sizes: [2]")
    path = project(matrix.replace("test_timeout: 60", "test_timeout: 3"))
    (path.parent / "tests" / "test_hang.py").write_text(HANGING)
    done = run_harness("run", "--executor", "local", "--out", "out", cwd=path.parent)
    assert done.returncode == 1, done.stdout + done.stderr
    # The one line of the failure, on screen and in summary.md, opens with the timeout and its matrix key.
    said = "test_hangs FAILED 3"
    line = next(line for line in done.stdout.splitlines() if said in line)
    assert ": timed out after 3 s (test_timeout in matrix.yaml): rank 0 is not in a collective" in line
    summary_md = (path.parent / "out" / "summary.md").read_text()
    assert "timed out after 3 s (test_timeout in matrix.yaml)" in summary_md
    # The counts in pytest's words, on screen and in the table.
    assert "FAILED: 1 failed, 1 passed in" in done.stdout and "failed: 1 failed, 1 passed" in done.stdout


def test_plan_warns_of_a_cell_with_more_ranks_than_cores():
    cells = [Cell(f"cpu-gloo-ws{n}", "cpu", "gloo", n, ("tests",)) for n in (2, 3)]
    planned = [PlannedCell(cells[0], "local", ""), PlannedCell(cells[1], "local", "")]
    assert oversubscription_warnings(planned, cores=2) == [
        "warning: cpu-gloo-ws3 runs 3 ranks on 2 cores: they share cores "
        "(slower; raise test_timeout or drop the cell here if tests time out)"
    ]
    # A cell that will not run here is no concern of this host's.
    assert oversubscription_warnings([PlannedCell(cells[1], None, "skipped")], cores=2) == []
