"""`harness report`'s engine: merge results of cells run on different machines into one report.

Inputs are `harness run --out` directories (summary.json), single cell directories (cell.json and, once the
cell finished, result.json), or directories holding either (as `actions/download-artifact` lays artifacts
out). A cell found in several inputs is taken from the one where it ran (a run beats a skip; among runs,
the later input wins). A cell directory without its completion record is `incomplete`. Cells of the matrix
found in no input are "missing": their job died before uploading anything, which is an error. Merged
cells keep summary.json's format, with absolute results_dir.

The inputs may be artifacts of untrusted runs: nothing is read outside the directories named (no link to
a directory is followed below them, no absolute or `..` path a summary names), every file is read bounded,
and a file that is not what the harness writes is an error (exit 2) naming it and its key.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from harness.bench.floors import Floor
from harness.bench.verdict import BenchOutcome, judge_bench
from harness.common.errors import EXIT_NO_TESTS, EXIT_OK, EXIT_TEST_FAILURES, ConfigurationError
from harness.config.model import Cell
from harness.results.bench_documents import find_bench_documents
from harness.results.cell_dir import read_completion_record
from harness.results.cell_result import CellResult, CellStatus, ResultFormatError, RunSummary, device_rank
from harness.results.files import (
    CELL_JSON,
    JUNIT_XML,
    RESULT_JSON,
    SUMMARY_JSON,
    UnsafeResultFile,
    directory_below,
    read_json,
)
from harness.results.junit import read_junit_counts, write_merged_junit
from harness.results.report import ResultsReport, cell_failures, compute_exit_code, failures_report, now_iso
from harness.results.summary import load_summary

MISSING_REASON = "no results: found in none of the inputs (its job died or uploaded nothing; see its log)"
_RAN = ("passed", "failed", "error", "incomplete")


def expand_inputs(paths: list[Path]) -> list[Path]:
    """Run and cell directories named, or found one level below a named directory; bad input is an error."""
    found: list[Path] = []
    for path in paths:
        if not path.exists():
            raise ConfigurationError(f"{path}: no such directory; pass `harness run --out` directories.")
        if path.is_file() and path.name == SUMMARY_JSON:
            path = path.parent
        if not path.is_dir():
            raise ConfigurationError(
                f"{path}: not a directory; pass `harness run --out` or cell directories."
            )
        if _is_result_dir(path):
            found.append(path)
            continue
        children = sorted(child for child in path.iterdir() if _is_result_dir(child) and _not_a_link(child))
        if not children:
            raise ConfigurationError(
                f"{path}: no results there: neither {SUMMARY_JSON} (a `harness run --out` directory) nor "
                f"{CELL_JSON} (a cell directory), nor directories holding them. An artifact downloaded empty "
                "means its cell job failed before `harness run` wrote anything: see that job's log."
            )
        found.extend(children)
    return found


def _is_result_dir(path: Path) -> bool:
    return (path / SUMMARY_JSON).is_file() or (path / CELL_JSON).is_file()


def _not_a_link(child: Path) -> bool:
    """True for a real directory below a named one; a link to one is an error (it may lead anywhere)."""
    if child.is_symlink():
        raise ConfigurationError(
            f"{child}: a symbolic link; results are read only from real directories below the ones named: "
            "pass its target itself if you trust it."
        )
    return True


def _cells_of_run(run_dir: Path) -> tuple[RunSummary, list[CellResult]]:
    summary = load_summary(run_dir)
    cells = []
    for index, cell in enumerate(summary.cells):
        if cell.results_dir:
            where = f"{run_dir / SUMMARY_JSON}: cells[{index}].results_dir"
            inside = _below(run_dir, cell.results_dir, where).resolve()
            cell = dataclasses.replace(cell, results_dir=str(inside))
        cells.append(cell)
    for index, cell_id in enumerate(summary.pending):
        # An interrupted run: the runner wrote cell.json before starting the cell, junit.xml if it finished.
        cell_dir = _below(run_dir, cell_id, f"{run_dir / SUMMARY_JSON}: pending[{index}]", name=True)
        if (cell_dir / CELL_JSON).is_file():
            cells.append(_cell_of_dir(cell_dir))
    return summary, cells


def _below(run_dir: Path, relative: str, where: str, *, name: bool = False) -> Path:
    """`run_dir/relative` for a path a summary names (`where`); ConfigurationError unless it stays inside
    `run_dir` without links (`name`: it is one directory's name, a cell id)."""
    try:
        if name and len(Path(relative).parts) != 1:
            raise UnsafeResultFile(f"{relative!r} is not a cell id")
        return directory_below(run_dir, relative)
    except UnsafeResultFile as error:
        raise ConfigurationError(
            f"{where}: {error}; results are read only inside the directories named. The summary was not "
            "written by `harness run` or was edited: rerun the cells, or remove the entry"
        ) from None


def _cell_of_dir(cell_dir: Path) -> CellResult:
    """A cell directory's result: its completion record, or `incomplete` without one."""
    try:
        cell = Cell.from_json(read_json(cell_dir / CELL_JSON))
    except (OSError, ValueError, TypeError, AttributeError, UnsafeResultFile) as error:
        raise ConfigurationError(
            f"{cell_dir / CELL_JSON}: not a cell written by the harness ({error})."
        ) from None
    source = cell_dir / RESULT_JSON
    try:
        result = read_completion_record(cell_dir)
    except ResultFormatError as error:
        raise ConfigurationError(
            f"{source}: {error}; not a file the harness wrote: rerun the cell, or remove it"
        ) from None
    except (OSError, ValueError, UnsafeResultFile) as error:
        source = cell_dir / CELL_JSON
        result = _result_of(cell, source, "error", f"its completion record is unusable: {error}")
    if result is None:
        source = cell_dir / CELL_JSON
        counts = read_junit_counts(cell_dir / JUNIT_XML)
        listed = f"; its junit.xml lists {counts.total} test(s), not judged" if counts else ""
        reason = f"no completion record ({RESULT_JSON}): the run was killed or is still running{listed}"
        result = _result_of(cell, source, "incomplete", reason)
    result.results_dir = str(cell_dir.resolve())
    # A result made here from cell.json is checked as one read from result.json: the same one validation.
    try:
        return CellResult.from_json(result.to_json())
    except ResultFormatError as error:
        raise ConfigurationError(
            f"{source}: {error}; not a file the harness wrote: rerun the cell, or remove it"
        ) from None


def _result_of(cell: Cell, source: Path, status: CellStatus, reason: str) -> CellResult:
    try:
        return CellResult.of_cell(cell, status, reason)
    except (TypeError, ValueError) as error:  # cell.json's params are not a mapping
        raise ConfigurationError(f"{source}: not a cell written by the harness ({error}).") from None


def _missing_cell(cell: Cell) -> CellResult:
    return CellResult.of_cell(cell, "error", MISSING_REASON, missing=True)


def merge_results(
    paths: list[Path],
    *,
    expected: list[Cell] | None = None,
    strict: bool = False,
    floors: list[Floor] | None = None,
    junit: Path | None = None,
) -> ResultsReport:
    """Merge the inputs into one report; `expected` cells found nowhere become missing (errored) cells.

    With `junit`, the merged junit.xml is written there, and the cells' failures read in the same pass.
    """
    floors = floors or []
    inputs = expand_inputs(paths)
    chosen: dict[str, tuple[CellResult, Path]] = {}
    notes: list[str] = []
    starts, ends, matrices = [], [], []
    bench: list[BenchOutcome] = []
    for directory in inputs:
        if (directory / SUMMARY_JSON).is_file():
            summary, cells = _cells_of_run(directory)
            starts.append(summary.started)
            ends.append(summary.finished)
            matrices.append(summary.matrix)
        else:
            cells = [_cell_of_dir(directory)]
        for cell in cells:
            previous = chosen.get(cell.id)
            if previous is not None:
                ran_before, ran_now = previous[0].status in _RAN, cell.status in _RAN
                if ran_before == ran_now:
                    notes.append(
                        f"{cell.id} is in {previous[1]} and {directory}; kept the later, {directory}"
                    )
                elif ran_before:
                    continue
            chosen[cell.id] = (cell, directory)
    # Bench documents anywhere under the directories as named: a qualification folder holds its bench JSON
    # next to the run directory, not inside it.
    seen: set[Path] = set()
    for root in paths:
        for path, document in find_bench_documents(root.parent if root.is_file() else root):
            if path.resolve() not in seen:
                seen.add(path.resolve())
                bench.append(judge_bench(path, document, floors))
    cells = [cell for cell, _ in chosen.values()]
    if expected is not None:
        wanted = {cell.id: cell for cell in expected}
        cells = [cell for cell in cells if cell.id in wanted]
        present = {cell.id for cell in cells}
        cells += [_missing_cell(cell) for cell in expected if cell.id not in present]
        order = {cell.id: position for position, cell in enumerate(expected)}
        cells.sort(key=lambda cell: order[cell.id])
    else:
        cells.sort(key=_grid_order)
    bench.sort(key=lambda outcome: (device_rank(outcome.device), outcome.world_size, str(outcome.path)))
    exit_code = compute_exit_code(cells, strict=strict, interrupted=False)
    if exit_code in (EXIT_OK, EXIT_NO_TESTS) and any(outcome.failed for outcome in bench):
        exit_code = EXIT_TEST_FAILURES
    summary = RunSummary(
        matrix=", ".join(sorted({m for m in matrices if m})),
        started=min((s for s in starts if s), default=None),
        finished=max((e for e in ends if e), default=now_iso()),
        exit_code=exit_code,
        strict=strict,
        cells=cells,
        merged_from=[str(directory) for directory in inputs],
        notes=notes,
    )
    scope = None if expected is None else {(cell.device, cell.world_size) for cell in expected}
    known = write_merged_junit(cells, Path("/"), junit) if junit is not None else {}
    found = (known.get(cell.id) or cell_failures(cell, Path("/")) for cell in cells)
    return failures_report(summary, found, exit_code, bench=bench, floors=floors, floor_scope=scope)


def _grid_order(cell: CellResult) -> tuple[int, int, str]:
    return device_rank(cell.device), cell.world_size, cell.id

