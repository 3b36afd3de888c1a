"""What every executor does around a cell: prepare its directory, then turn the cell's files into a result.

Both executors run `python -m harness.cell_runner work/cell.json work` and let it write only into the
cell's work directory; after the cell ends `harvest_work_dir` copies the expected files out, checked, and
`collect_cell_result` judges them. The scheduler writes the completion record (result.json) last.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

from harness.model import Cell, CellResult, TestCounts
from harness.results.files import (
    CELL_JSON,
    FINGERPRINT_JSON,
    HARVESTED_FILES,
    JUNIT_XML,
    LOG_TXT,
    RESULT_JSON,
    WORK_DIR,
    UnsafeResultFile,
    fresh_cell_dir,
    read_json,
    read_regular,
    write_json,
)

# pytest's exit codes (pytest.ExitCode) that say something other than "tests ran".
PYTEST_EXIT_REASONS = {
    2: "pytest was interrupted",
    3: "pytest hit an internal error",
    4: "pytest usage error (check the cell's pytest_args, markers and keyword)",
    5: "pytest collected no tests (check the cell's tests, markers and keyword)",
}
LOG_TAIL_BYTES = 64 << 10


def prepare_cell_dir(cell: Cell, cell_dir: Path) -> Path:
    """Empty `cell_dir` (links and all), write cell.json there and in work/; returns the work directory."""
    fresh_cell_dir(cell_dir)
    document = cell.to_json()
    write_json(cell_dir / CELL_JSON, document)
    write_json(cell_dir / WORK_DIR / CELL_JSON, document)
    return cell_dir / WORK_DIR


def parse_junit_counts(data: bytes) -> TestCounts:
    """Test counts summed over every testsuite of a JUnit document; ValueError when it is not one."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as error:
        raise ValueError(f"not well-formed XML ({error})") from None
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    if root.tag not in ("testsuite", "testsuites"):
        raise ValueError(f"root element <{root.tag}> is neither <testsuites> nor <testsuite>")
    counts = TestCounts()
    for suite in suites:
        tests, failures, errors, skipped = (
            int(suite.get(name, 0)) for name in ("tests", "failures", "errors", "skipped")
        )
        counts.failed += failures
        counts.errors += errors
        counts.skipped += skipped
        counts.passed += max(0, tests - failures - errors - skipped)
    return counts


def read_junit_counts(junit_path: Path) -> TestCounts | None:
    """Counts of a JUnit file, or None when it is missing, unsafe or unreadable."""
    try:
        return parse_junit_counts(read_regular(junit_path, HARVESTED_FILES[JUNIT_XML]))
    except (OSError, ValueError, UnsafeResultFile):
        return None


def log_tail(results_dir: Path, lines: int = 20) -> str:
    """The last lines of the cell's log, for a reason that says what went wrong."""
    try:
        data = read_regular(results_dir / LOG_TXT, LOG_TAIL_BYTES, tail=True)
    except (OSError, UnsafeResultFile):
        return "(no log.txt)"
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.rstrip().splitlines()[-lines:]) or "(log.txt is empty)"


def read_fingerprint(results_dir: Path) -> dict:
    """The cell's fingerprint.json, or {} when the runner did not get that far."""
    try:
        document = read_json(results_dir / FINGERPRINT_JSON, HARVESTED_FILES[FINGERPRINT_JSON])
    except (OSError, ValueError, UnsafeResultFile):
        return {}
    return document if isinstance(document, dict) else {}


def collect_cell_result(
    cell: Cell,
    results_dir: Path,
    exit_code: int,
    duration: float,
    executor_name: str,
    reason: str = "",
    refused: Iterable[str] = (),
) -> CellResult:
    """The CellResult of a finished run: `reason` (timeout, crash) or a refused file makes it an error."""
    refused = list(refused)
    junit_error = ""
    counts: TestCounts | None = None
    try:
        counts = parse_junit_counts(read_regular(results_dir / JUNIT_XML, HARVESTED_FILES[JUNIT_XML]))
    except FileNotFoundError:
        junit_error = f"no junit.xml (the cell runner exited with code {exit_code})"
    except (OSError, ValueError, UnsafeResultFile) as error:
        junit_error = f"junit.xml is unreadable: {error}"
    if refused:
        status = "error"
        reason = "the cell's results were tampered with: " + "; ".join(refused)
    elif reason:
        status = "error"
    elif counts is None:
        status = "error"
        reason = f"{junit_error}\nlog tail:\n{log_tail(results_dir)}"
    elif exit_code in PYTEST_EXIT_REASONS:
        status = "error"
        reason = f"{PYTEST_EXIT_REASONS[exit_code]}\nlog tail:\n{log_tail(results_dir)}"
    elif counts.failed or counts.errors or exit_code != 0:
        status = "failed"
        reason = f"{counts.failed} failed, {counts.errors} errors (pytest exit code {exit_code})"
    else:
        status = "passed"
    return CellResult.of_cell(
        cell,
        status,
        reason,
        executor=executor_name,
        counts=counts or TestCounts(),
        duration_s=duration,
        results_dir=str(results_dir),
        fingerprint=read_fingerprint(results_dir),
    )


def write_completion_record(result: CellResult, cell_dir: Path) -> None:
    """result.json: written last, so a cell directory that has it finished, and one without did not."""
    if cell_dir.is_dir() and not cell_dir.is_symlink():
        write_json(cell_dir / RESULT_JSON, result.to_json())


def read_completion_record(cell_dir: Path) -> CellResult | None:
    """The cell's result.json, or None when it has none (the cell did not finish).

    UnsafeResultFile or ValueError when there is one that is a link or not a result the harness wrote.
    """
    try:
        document = read_json(cell_dir / RESULT_JSON)
    except FileNotFoundError:
        return None
    if not isinstance(document, dict):
        raise ValueError(f"{cell_dir / RESULT_JSON}: not an object")
    try:
        return CellResult.from_json(document)
    except TypeError as error:
        raise ValueError(f"{cell_dir / RESULT_JSON}: {error}") from None


def write_cell_json(cell: Cell, cell_dir: Path) -> Path:
    """Write cell.json into `cell_dir` (created if needed); returns its path."""
    cell_dir.mkdir(parents=True, exist_ok=True)
    write_json(cell_dir / CELL_JSON, cell.to_json())
    return cell_dir / CELL_JSON
