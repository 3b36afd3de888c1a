"""What went wrong, as `harness run`, `harness report` and `harness qualify` all print it
(harness/presentation/problems.py)."""

from __future__ import annotations

from pathlib import Path

from harness.common.errors import EXIT_STRICT
from harness.presentation.problems import problem_lines
from harness.results.cell_result import CellResult, RunSummary
from harness.results.junit import Failure
from harness.results.report import ResultsReport


def cell(
    cell_id: str, status: str, reason: str = "", results_dir: str = "", required: bool = False
) -> CellResult:
    device, _, rest = cell_id.partition("-")
    world_size = int(rest.rpartition("-ws")[2])
    return CellResult(
        id=cell_id,
        device=device,
        world_size=world_size,
        status=status,
        reason=reason,
        results_dir=results_dir,
        required=required,
    )


def report_of(cells: list[CellResult], failures: list[Failure], exit_code: int, **fields) -> ResultsReport:
    return ResultsReport(RunSummary(cells=cells), failures, exit_code, bench=[], floors=[], **fields)


def test_each_failed_cell_says_its_tests_or_its_reason_and_where_its_log_is() -> None:
    failures = [Failure("cpu-gloo-ws2", f"tests/test_x.py::test_{n}", "boom", []) for n in range(4)]
    report = report_of(
        [
            cell("cpu-gloo-ws2", "failed", results_dir="cpu-gloo-ws2"),
            cell(
                "cpu-gloo-ws4",
                "error",
                reason="image cpu:abc is missing\nbuild it",
                results_dir="cpu-gloo-ws4",
            ),
            cell("cuda-nccl-ws2", "error", reason="found in no DIR", required=True),
            cell("xpu-xccl-ws1", "skipped", reason="no Intel GPU on this host", required=True),
            cell("xpu-xccl-ws2", "skipped", reason="no Intel GPU on this host"),
            cell("cpu-gloo-ws1", "passed", results_dir="cpu-gloo-ws1"),
        ],
        failures,
        EXIT_STRICT,
        failures_left_out={"cpu-gloo-ws2": 5},
    )

    lines = problem_lines(report, logs_under=Path("out"), shown_per_cell=3)

    assert lines == [
        "FAILED cpu-gloo-ws2 tests/test_x.py::test_0: boom",
        "FAILED cpu-gloo-ws2 tests/test_x.py::test_1: boom",
        "FAILED cpu-gloo-ws2 tests/test_x.py::test_2: boom",
        # One shown here, five whose details were never read.
        "… and 6 more failed tests of cpu-gloo-ws2: see its junit.xml",
        "  full log: out/cpu-gloo-ws2/log.txt",
        "ERROR cpu-gloo-ws4: image cpu:abc is missing",
        "  full log: out/cpu-gloo-ws4/log.txt",
        "ERROR cuda-nccl-ws2: found in no DIR",
        "skipped xpu-xccl-ws1, xpu-xccl-ws2: no Intel GPU on this host",
        "--strict: required cells did not run or errored: cuda-nccl-ws2, xpu-xccl-ws1",
    ]


def test_a_merged_report_shows_every_failure_read_and_its_absolute_logs() -> None:
    failures = [Failure("cpu-gloo-ws2", f"tests/test_x.py::test_{n}", "boom", []) for n in range(12)]
    report = report_of([cell("cpu-gloo-ws2", "failed", results_dir="/artifacts/cpu-gloo-ws2")], failures, 1)

    lines = problem_lines(report)

    assert len([line for line in lines if line.startswith("FAILED ")]) == 12
    assert lines[-1] == "  full log: /artifacts/cpu-gloo-ws2/log.txt"
