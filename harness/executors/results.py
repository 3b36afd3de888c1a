"""What every executor does around a cell: write cell.json, then turn the cell's files into a CellResult."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from harness.model import Cell, CellResult, TestCounts

CELL_JSON = "cell.json"
JUNIT_XML = "junit.xml"
LOG_TXT = "log.txt"
FINGERPRINT_JSON = "fingerprint.json"
PROGRESS_JSONL = "progress.jsonl"

# pytest's exit codes (pytest.ExitCode) that say something other than "tests ran".
PYTEST_EXIT_REASONS = {
    2: "pytest was interrupted",
    3: "pytest hit an internal error",
    4: "pytest usage error (check the cell's pytest_args, markers and keyword)",
    5: "pytest collected no tests (check the cell's tests, markers and keyword)",
}


def write_cell_json(cell: Cell, results_dir: Path) -> Path:
    """Write the cell the runner will read; returns its path."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / CELL_JSON
    path.write_text(json.dumps(cell.to_json(), indent=2) + "\n", encoding="utf-8")
    return path


def read_junit_counts(junit_path: Path) -> TestCounts | None:
    """Test counts summed over every testsuite of a JUnit file, or None when it is missing or unreadable."""
    try:
        root = ET.parse(junit_path).getroot()
    except (OSError, ET.ParseError):
        return None
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    counts = TestCounts()
    for suite in suites:
        tests = int(suite.get("tests", 0))
        failures = int(suite.get("failures", 0))
        errors = int(suite.get("errors", 0))
        skipped = int(suite.get("skipped", 0))
        counts.failed += failures
        counts.errors += errors
        counts.skipped += skipped
        counts.passed += max(0, tests - failures - errors - skipped)
    return counts


def log_tail(results_dir: Path, lines: int = 20) -> str:
    """The last lines of the cell's log, for a reason that says what went wrong."""
    try:
        text = (results_dir / LOG_TXT).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log.txt)"
    return "\n".join(text.rstrip().splitlines()[-lines:]) or "(log.txt is empty)"


def read_fingerprint(results_dir: Path) -> dict:
    """The cell's fingerprint.json, or {} when the runner did not get that far."""
    try:
        return json.loads((results_dir / FINGERPRINT_JSON).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def collect_cell_result(
    cell: Cell,
    results_dir: Path,
    exit_code: int,
    duration: float,
    executor_name: str,
    reason: str = "",
) -> CellResult:
    """The CellResult of a finished run: `reason` (timeout, crash) makes it an error; else junit decides."""
    counts = read_junit_counts(results_dir / JUNIT_XML)
    if reason:
        status = "error"
    elif counts is None:
        status = "error"
        reason = f"no junit.xml (runner exit code {exit_code})\nlog tail:\n{log_tail(results_dir)}"
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
