"""The harness's own verdicts on synthetic inputs: a cell judged from its exit code and junit.xml (`<error>`
testcases included), two machines' copies of a cell merged, --strict against an interruption, and the
per-test timeout a cell's pytest is given. Each test here was seen to fail with the one-line bug it names
planted (benchmarks/harness/harness_mutation_check.py plants them all)."""

from __future__ import annotations

import json
from pathlib import Path

from harness.bench.floors import load_floors
from harness.cell.runner import build_pytest_command
from harness.common.progress_events import Collected, Reported, event_line
from harness.config.model import Cell
from harness.results.cell_dir import collect_cell_result, write_cell_json, write_completion_record
from harness.results.cell_result import CellResult, TestCounts
from harness.results.junit import junit_failures, read_junit_counts
from harness.results.merge import merge_results
from harness.results.report import compute_exit_code

# What pytest writes for a fixture that raised (an <error>, not a <failure>) next to a passing test.
JUNIT_WITH_ERROR = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="cpu-gloo-ws2" errors="1" failures="0" skipped="0" tests="2" time="1.0">
<testcase classname="tests.test_x" name="test_ok" time="0.1"/>
<testcase classname="tests.test_x" name="test_fixture_breaks" time="0.1">
<error message="failed on setup with &quot;RuntimeError: ranks 0, 1 of 2: no rendezvous&quot;">
tests/test_x.py:7: RuntimeError
</error></testcase>
</testsuite></testsuites>
"""
CLEAN_JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="cpu-gloo-ws2" errors="0" failures="0" skipped="0" tests="3" time="1.0">
<testcase classname="tests.test_x" name="test_a" time="0.1"/>
<testcase classname="tests.test_x" name="test_b" time="0.1"/>
<testcase classname="tests.test_x" name="test_c" time="0.1"/>
</testsuite></testsuites>
"""


def cell(**fields) -> Cell:
    defaults = dict(id="cpu-gloo-ws2", device="cpu", backend="gloo", world_size=2, tests=("tests",))
    return Cell(**{**defaults, **fields})


def cell_dir_with(tmp_path: Path, junit: str) -> Path:
    directory = tmp_path / "cpu-gloo-ws2"
    directory.mkdir(parents=True)
    (directory / "junit.xml").write_text(junit)
    (directory / "log.txt").write_text("[harness] cell cpu-gloo-ws2\nKilled\n")
    return directory


def test_a_runner_that_exited_non_zero_after_a_clean_junit_did_not_pass(tmp_path):
    # Killed by the OOM killer (137) or crashing at exit after pytest wrote its report: every test in the
    # junit passed, yet the cell's process did not succeed.
    result = collect_cell_result(cell(), cell_dir_with(tmp_path, CLEAN_JUNIT), 137, 1.0, "local")
    assert result.status == "failed" and "exit code 137" in result.reason
    assert result.counts.passed == 3


def test_error_testcases_are_counted_and_listed(tmp_path):
    directory = cell_dir_with(tmp_path, JUNIT_WITH_ERROR)
    counts = read_junit_counts(directory / "junit.xml")
    assert (counts.passed, counts.failed, counts.errors) == (1, 0, 1)

    result = collect_cell_result(cell(), directory, 1, 1.0, "local")
    assert result.status == "failed" and result.reason.startswith("0 failed, 1 errors")

    listed = junit_failures("cpu-gloo-ws2", directory / "junit.xml").failures
    assert [failure.test for failure in listed] == ["tests/test_x.py::test_fixture_breaks"]
    assert listed[0].ranks == [0, 1] and listed[0].world_size == 2


def test_an_error_testcase_fails_the_cell_even_when_pytest_said_0(tmp_path):
    # The exit code is not the only witness: a junit that lists an error is a failed cell.
    result = collect_cell_result(cell(), cell_dir_with(tmp_path, JUNIT_WITH_ERROR), 0, 1.0, "local")
    assert result.status == "failed"


def test_a_cell_stopped_early_counts_the_tests_it_never_ran(tmp_path):
    directory = cell_dir_with(tmp_path, CLEAN_JUNIT)
    events = [Collected(5)] + [
        Reported(f"tests/test_x.py::test_{name}", "teardown", "passed") for name in "ab"
    ]
    (directory / "progress.jsonl").write_text("".join(event_line(event) + "\n" for event in events))
    # junit.xml says 3 finished, progress 2: the larger is what ran; 5 collected leaves 2 never run.
    result = collect_cell_result(cell(), directory, -9, 1.0, "local", "cell timed out after 9s")
    assert result.status == "error" and result.counts.not_run == 2


# -- merging two machines' copies of a cell


def copy_of_cell(root: Path, status: str, reason: str) -> Path:
    """A cell directory as a cell job uploads it: cell.json and its completion record."""
    directory = root / "cpu-gloo-ws2"
    write_cell_json(cell(required=True), directory)
    # One test ran: a run in which nothing ran exits 5, which is not what these tests are about.
    counts = TestCounts(passed=1) if status == "passed" else TestCounts(failed=1)
    write_completion_record(CellResult.of_cell(cell(required=True), status, reason, counts=counts), directory)
    return directory


def test_of_two_runs_of_a_cell_the_later_input_wins_and_is_noted(tmp_path):
    first = copy_of_cell(tmp_path / "first", "failed", "the first machine's run")
    second = copy_of_cell(tmp_path / "second", "passed", "the second machine's run")

    forward = merge_results([first, second])
    assert [c.reason for c in forward.cells] == ["the second machine's run"]
    assert forward.exit_code == 0
    assert forward.summary.notes == [f"cpu-gloo-ws2 is in {first} and {second}; kept the later, {second}"]

    backward = merge_results([second, first])
    assert [c.reason for c in backward.cells] == ["the first machine's run"]
    assert backward.exit_code == 1


def test_a_run_of_a_cell_beats_a_skip_of_it_in_either_order(tmp_path):
    ran = copy_of_cell(tmp_path / "ran", "failed", "it ran and failed")
    skipped = copy_of_cell(tmp_path / "skipped", "skipped", "needs 2 CUDA GPUs")
    for inputs in ([ran, skipped], [skipped, ran]):
        merged = merge_results(inputs)
        assert [c.status for c in merged.cells] == ["failed"], inputs
        assert merged.exit_code == 1 and merged.summary.notes == []


def test_a_cell_found_in_no_input_is_an_error(tmp_path):
    ran = copy_of_cell(tmp_path / "ran", "passed", "")
    absent = cell(id="cpu-gloo-ws4", world_size=4, required=True)
    merged = merge_results([ran], expected=[cell(required=True), absent])
    statuses = [(c.id, c.status) for c in merged.cells]
    assert statuses == [("cpu-gloo-ws2", "passed"), ("cpu-gloo-ws4", "error")]
    assert merged.exit_code == 1
    assert merge_results([ran], expected=[cell(required=True), absent], strict=True).exit_code == 3


# -- exit codes


def test_an_interrupted_strict_run_exits_130_even_with_required_cells_not_run():
    # Ctrl-C of `harness run --strict` leaves required cells skipped or incomplete: that is the
    # interruption's doing, and the shell must see 130, not 3.
    cells = [
        CellResult("a", "cpu", 2, "passed", required=True, counts=TestCounts(passed=1)),
        CellResult("b", "cpu", 4, "incomplete", required=True),
    ]
    assert compute_exit_code(cells, strict=True, interrupted=True) == 130
    assert compute_exit_code(cells, strict=True, interrupted=False) == 3
    optional = [
        CellResult("a", "cpu", 2, "skipped", required=False),
        CellResult("b", "cpu", 4, "passed", required=True, counts=TestCounts(passed=1)),
    ]
    assert compute_exit_code(optional, strict=True, interrupted=False) == 0


# -- timeouts


def test_each_test_gets_the_per_test_timeout_not_the_cells():
    command = build_pytest_command(
        cell(timeout_s=1800.0, test_timeout_s=45.0), Path("/results"), load_plugin=False
    )
    assert command[command.index("--dist-timeout") + 1] == "45"


def test_a_bench_document_under_its_floor_fails_a_merge_whose_cells_passed(tmp_path):
    floors_file = tmp_path / "floors.yaml"
    floors_file.write_text(
        "version: 1\nfloors:\n  - {device: cpu, world_size: 2, op: broadcast, busbw_gbps: 0.1}\n"
    )
    floors = load_floors(floors_file)
    results = tmp_path / "results"
    copy_of_cell(results, "passed", "")
    row = {"op": "broadcast", "impl": "communicator", "bytes": 1 << 20, "device": "cpu", "world_size": 2}
    for busbw, exit_code in ((0.5, 0), (0.01, 1)):
        document = {"settings": {"device": "cpu", "world_size": 2}, "rows": [{**row, "busbw_gbps": busbw}]}
        (results / "bench-cpu-ws2.json").write_text(json.dumps(document))
        merged = merge_results([results], floors=floors)
        assert [c.status for c in merged.cells] == ["passed"]
        assert merged.exit_code == exit_code, busbw
