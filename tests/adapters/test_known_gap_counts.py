"""Holding known gaps are counted and shown as "known gap", not "skipped": counts, grid, live progress."""

from __future__ import annotations

from pathlib import Path

from harness.common.progress_events import Reported
from harness.presentation.markdown import cell_text
from harness.presentation.progress import CellProgress
from harness.results.cell_result import CellResult
from harness.results.junit import scan_junit

GAP = '<skipped type="pytest.xfail" message="known gap of vllm on cpu: r"/>'
JUNIT = f"""<?xml version="1.0" encoding="utf-8"?>
<testsuites>
  <testsuite name="cpu-gloo-ws2-vllm-0.33.0" tests="5" failures="0" errors="0" skipped="4">
    <testcase name="test_all_reduce[cpu]"/>
    <testcase name="test_gather[cpu]">{GAP}</testcase>
    <testcase name="test_x[cpu]">{GAP}</testcase>
    <testcase name="test_y[cpu]"><skipped type="pytest.xfail" message="flaky here"/></testcase>
    <testcase name="test_z[cpu]"><skipped type="pytest.skip" message="needs world size 3"/></testcase>
  </testsuite>
</testsuites>
"""


def test_holding_gaps_are_counted_apart_from_skips_and_other_xfails(tmp_path: Path):
    path = tmp_path / "junit.xml"
    path.write_text(JUNIT)
    counts = scan_junit(path)
    assert (counts.passed, counts.known_gaps, counts.skipped, counts.total) == (1, 2, 2, 5)


def test_the_grid_says_known_gaps():
    cell = {
        "id": "cpu-gloo-ws2-vllm",
        "device": "cpu",
        "world_size": 2,
        "status": "passed",
        "reason": "",
        "required": False,
        "params": {"vllm": "0.33.0"},
        "counts": {"passed": 1, "failed": 0, "errors": 0, "skipped": 2, "known_gaps": 2},
        "duration_s": 3.0,
    }
    assert (
        cell_text(CellResult.from_json(cell)) == "0.33.0: passed: 1 passed, 2 skipped (+2 known gaps) · 3.0s"
    )
    cell["counts"] = {"passed": 1, "failed": 0, "errors": 0, "skipped": 0}  # a summary from before
    assert cell_text(CellResult.from_json(cell)) == "0.33.0: passed: 1 passed · 3.0s"


def test_the_live_progress_says_known_gap_and_counts_it_apart():
    cell = CellProgress()
    assert cell.apply(Reported("t.py::test_gap", "call", "skipped", known_gap=True)) == "KNOWN GAP"
    assert cell.apply(Reported("t.py::test_skip", "call", "skipped")) == "SKIPPED"
    assert (cell.known_gaps, cell.skipped) == (1, 1)
