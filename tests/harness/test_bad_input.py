"""Every subcommand meets bad input with exit 2 and a one-line message naming the path: never a traceback.

Runs the CLI in-process: an exception escaping `main` fails the test with its traceback, which is the
point. Output paths are checked before any work starts (a bench that ran for minutes must not lose its
figures to an unwritable --json).
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.commands.cli import main as harness_main
from harness.common.errors import EXIT_CONFIG, EXIT_STRICT, EXIT_TEST_FAILURES
from harness.config.model import Cell
from harness.results.cell_dir import write_cell_json, write_completion_record
from harness.results.cell_result import CellResult, TestCounts

MATRIX = """
version: 1
defaults:
  tests: [tests]
devices:
  cpu:
    world_sizes: [1]
"""


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """(exit code, stdout + stderr) of `harness ARGS`."""
    try:
        code = harness_main([str(arg) for arg in args])
    except SystemExit as exit_:  # argparse's own errors
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_nothing.py").write_text("def test_nothing():\n    pass\n")
    (tmp_path / "matrix.yaml").write_text(textwrap.dedent(MATRIX).lstrip())
    (tmp_path / "a-file").write_text("not a directory\n")
    return tmp_path


def make_cell(cell_id: str = "cpu-gloo-ws2") -> Cell:
    return Cell(id=cell_id, device="cpu", backend="gloo", world_size=2, tests=("tests",), required=True)


def junit_of(passed: int) -> str:
    cases = "".join(f'<testcase classname="t" name="t{i}"/>' for i in range(passed))
    suite = f'<testsuite name="s" tests="{passed}" failures="0" errors="0" skipped="0">{cases}</testsuite>'
    return f"<testsuites>{suite}</testsuites>"


def summary_with(cells: object, pending: list[str] | None = None) -> str:
    return json.dumps({"format": 1, "cells": cells, "pending": pending or [], "strict": False})


# Each entry lays out a bad input under the project and returns the command line that meets it.
BadInput = Callable[[Path], list[str]]
BAD_INPUTS: dict[str, BadInput] = {
    "run --out names a file": lambda p: ["run", p / "matrix.yaml", "--out", p / "a-file"],
    "run --out below a file": lambda p: ["run", p / "matrix.yaml", "--out", p / "a-file" / "out"],
    "run, no such matrix": lambda p: ["run", p / "nope.yaml", "--out", p / "out"],
    "run --jobs 0": lambda p: ["run", p / "matrix.yaml", "--jobs", "0"],
    "qualify --out names a file": lambda p: ["qualify", p / "matrix.yaml", "--out", p / "a-file"],
    "bench --json names a directory": lambda p: ["bench", "--json", p],
    "bench --plot below a file": lambda p: ["bench", "--plot", p / "a-file" / "x.png"],
    "plan, an unknown all2all backend": lambda p: [
        "plan",
        write(p / "m.yaml", MATRIX + "axes:\n  all2all_backend: [not_a_backend]\n"),
    ],
    "plan, an include with an undeclared axis value": lambda p: [
        "plan",
        write(
            p / "m.yaml",
            MATRIX
            + "axes:\n  all2all_backend: [naive]\n"
            + "include:\n  - {device: cpu, world_size: 2, all2all_backend: pplx}\n",
        ),
    ],
    "report, summary cells are not objects": lambda p: [
        "report",
        write(p / "r" / "summary.json", summary_with([1, 2])).parent,
    ],
    "report, a summary cell without device": lambda p: [
        "report",
        write(p / "r" / "summary.json", summary_with([{"id": "x", "status": "passed"}])).parent,
    ],
    "report, summary.json is not JSON": lambda p: ["report", write(p / "r" / "summary.json", "{").parent],
    "report, summary.json is a list": lambda p: ["report", write(p / "r" / "summary.json", "[]").parent],
    "report, cell.json is garbage": lambda p: ["report", write(p / "c" / "cell.json", '{"id": 3}').parent],
    "report, cell.json is a link": lambda p: [
        "report",
        link(p / "c" / "cell.json", p / "matrix.yaml").parent,
    ],
    "report, no results there": lambda p: ["report", p / "tests"],
    "report, no such directory": lambda p: ["report", p / "missing"],
    "report --markdown below a file": lambda p: [
        "report",
        finished_cell_dir(p),
        "--markdown",
        p / "a-file" / "r.md",
    ],
    "report --json names a directory": lambda p: ["report", finished_cell_dir(p), "--json", p],
    "report --junit below a file": lambda p: ["report", finished_cell_dir(p), "--junit", p / "a-file" / "j"],
    "matrix, unknown format": lambda p: ["matrix", p / "matrix.yaml", "--format", "yaml"],
    "images build, unknown device": lambda p: ["images", "build", "tpu"],
}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def link(path: Path, target: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)
    return path


def finished_cell_dir(project: Path, junit: str | None = None) -> Path:
    """A cell directory as a finished cell leaves it: cell.json, junit.xml, result.json."""
    cell = make_cell()
    cell_dir = project / "results" / cell.id
    write_cell_json(cell, cell_dir)
    (cell_dir / "junit.xml").write_text(junit if junit is not None else junit_of(3))
    result = CellResult.of_cell(cell, "passed", counts=TestCounts(passed=3), results_dir=str(cell_dir))
    write_completion_record(result, cell_dir)
    return cell_dir


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_exit_2_with_a_message_and_no_traceback(
    case: str, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = BAD_INPUTS[case](project)

    code, output = cli(capsys, *args)

    assert code == EXIT_CONFIG, output
    assert "Traceback" not in output
    assert output.strip(), "a bad input must be explained"


def test_output_paths_are_named_in_the_message(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, output = cli(capsys, "bench", "--json", project / "a-file" / "b.json")
    assert code == EXIT_CONFIG
    assert f"--json {project / 'a-file' / 'b.json'}" in output and len(output.strip().splitlines()) == 1


def test_a_killed_run_is_incomplete_whatever_its_junit_says(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # What `kill -9` of `harness run` leaves: the cell started (cell.json) and pytest wrote a junit.xml
    # of the tests it got through, but the harness never wrote the cell's completion record.
    out = project / "out"
    cell = make_cell()
    write(out / "summary.json", summary_with([], pending=[cell.id]))
    write_cell_json(cell, out / cell.id)
    (out / cell.id / "junit.xml").write_text(junit_of(14))

    code, output = cli(capsys, "report", out, "--json", project / "report.json")
    report = json.loads((project / "report.json").read_text())

    assert code == EXIT_TEST_FAILURES, output
    assert report["cells"][0]["status"] == "incomplete"
    assert "no completion record" in report["cells"][0]["reason"]
    assert "14 test(s), not judged" in report["cells"][0]["reason"]
    assert cli(capsys, "report", out, "--strict")[0] == EXIT_STRICT


def test_a_finished_cell_with_a_corrupt_junit_is_judged_by_its_record(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cell_dir = finished_cell_dir(project, junit="<testsuites><testsuite")

    code, output = cli(capsys, "report", cell_dir)

    assert code == 0, output
    assert "Traceback" not in output
