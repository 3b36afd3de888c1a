"""One cell's directory: prepared before the cell runs, judged after, closed by its completion record.

Both executors run `python -m harness.cell.runner work/cell.json work` and let it write only into the
cell's work directory; after the cell ends `harvest_work_dir` copies the expected files out, checked, and
`collect_cell_result` judges them. The scheduler writes the completion record (result.json) last.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from harness.common.progress_events import Collected, Interrupted, Reported, Started, parse_event_line
from harness.config.model import Cell
from harness.results.cell_result import CellResult, TestCounts
from harness.results.files import (
    CELL_JSON,
    FINGERPRINT_JSON,
    HARVESTED_FILES,
    JUNIT_XML,
    LASTFAILED_JSON,
    LOG_TXT,
    PROGRESS_JSONL,
    RESULT_JSON,
    WORK_DIR,
    UnsafeResultFile,
    fresh_cell_dir,
    read_json,
    read_regular,
    write_json,
)
from harness.results.junit import SkipReasons, scan_junit
from harness.results.quarantine import QuarantineTally

# pytest's exit codes (pytest.ExitCode) that say something other than "tests ran".
PYTEST_EXIT_REASONS = {
    2: "pytest was interrupted",
    3: "pytest hit an internal error",
    4: "pytest usage error (check the cell's pytest_args, markers and keyword)",
    5: "pytest collected no tests (check the cell's tests, markers and keyword)",
}
LOG_TAIL_BYTES = 64 << 10


def prepare_cell_dir(cell: Cell, cell_dir: Path) -> Path:
    """Empty `cell_dir` (links and all), write cell.json there and in work/; returns the work directory.

    The failed tests of the cell's last run here (lastfailed.json) go into work/'s pytest cache, so that
    `harness run MATRIX -- --lf` reruns them as pytest's `--lf` would.
    """
    last_failed = read_last_failed(cell_dir)
    fresh_cell_dir(cell_dir)
    document = cell.to_json()
    write_json(cell_dir / CELL_JSON, document)
    write_json(cell_dir / WORK_DIR / CELL_JSON, document)
    if last_failed:
        # The cell runner puts it into pytest's cache, as the user the cell runs as (a container's may not
        # be the harness's: directories made here would be closed to it).
        write_json(cell_dir / WORK_DIR / LASTFAILED_JSON, last_failed)
    return cell_dir / WORK_DIR


def read_last_failed(cell_dir: Path) -> dict[str, bool]:
    """The node ids pytest's cache held as failed after the cell's last run here; {} when none or unreadable.

    The file came out of the cell (untrusted): read bounded and link-safe, and kept only as pytest wrote it.
    """
    try:
        document = read_json(cell_dir / LASTFAILED_JSON, HARVESTED_FILES[LASTFAILED_JSON])
    except (OSError, ValueError, UnsafeResultFile):
        return {}
    if not isinstance(document, dict):
        return {}
    return {key: True for key, value in document.items() if isinstance(key, str) and value is True}


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
    """The CellResult of a finished run: `reason` (timeout, crash) or a refused file makes it an error.

    Failures of quarantined tests (the cell's `quarantine`) are counted apart and do not fail it."""
    refused = list(refused)
    junit_error = ""
    counts: TestCounts | None = None
    quarantine = QuarantineTally(cell.id, cell.quarantine)
    skips = SkipReasons()

    def on_case(case: ET.Element, suite: int | None) -> None:
        quarantine(case, suite)
        skips(case, suite)

    try:
        counts = quarantine.counts_without(scan_junit(results_dir / JUNIT_XML, on_case))
    except FileNotFoundError:
        junit_error = f"no junit.xml (the cell runner exited with code {exit_code})"
    except (OSError, ValueError, UnsafeResultFile) as error:
        junit_error = f"junit.xml is unreadable: {error}"
    progress = read_progress(results_dir)
    if refused:
        status = "error"
        reason = "the cell's results were tampered with: " + "; ".join(refused)
    elif reason:
        status = "error"
        reason += progress.where_it_stopped() + progress.interrupted_stacks()
        if counts is None and progress.finished:
            # Stopped before pytest wrote junit.xml: the finished tests' outcomes are not lost.
            counts = progress.counts
            reason += f"\n(counts from the progress events: {junit_error})"
    elif counts is None:
        status = "error"
        reason = f"{junit_error}\nlog tail:\n{log_tail(results_dir)}"
    elif exit_code in PYTEST_EXIT_REASONS:
        status = "error"
        reason = f"{PYTEST_EXIT_REASONS[exit_code]}\nlog tail:\n{log_tail(results_dir)}"
    elif counts.failed or counts.errors or exit_code not in _passing_exit_codes(counts):
        status = "failed"
        reason = f"{counts.failed} failed, {counts.errors} errors (pytest exit code {exit_code})"
    else:
        status = "passed"
    counts = counts or TestCounts()
    if progress.collected is not None and status != "passed":
        counts.not_run = max(0, progress.collected - max(progress.finished, counts.total))
    return CellResult.of_cell(
        cell,
        status,
        reason,
        executor=executor_name,
        counts=counts,
        duration_s=duration,
        results_dir=str(results_dir),
        fingerprint=read_fingerprint(results_dir),
        quarantine=quarantine.records() if counts.total else [],
        skip_reasons=skips.reasons,
    )


def _passing_exit_codes(counts: TestCounts) -> tuple[int, ...]:
    """pytest's exit codes of a cell that passed: 0, or 1 (tests failed) when only quarantined ones did."""
    return (0, 1) if counts.quarantined else (0,)


@dataclass
class ProgressSoFar:
    """What a cell's progress.jsonl says of how far it got."""

    collected: int | None = None
    finished: int = 0
    running: str = ""
    # The test that finished last: where the cell got to when none was running any more (a node killed
    # mid-test can fail the test on the other nodes before the harness sees the node go).
    last_finished: str = ""
    # pytest was interrupted in the running test while some of its ranks were still in it.
    interrupted: Interrupted | None = None
    # The finished tests' outcomes as the events reported them: the counts of a cell stopped before pytest
    # wrote junit.xml (killed past its grace period), where nothing else says what the finished tests did.
    counts: TestCounts = field(default_factory=TestCounts)

    def where_it_stopped(self) -> str:
        """' while running tests/x.py::t (3 of 10 tests finished, 7 not run)', ' after tests/x.py::t (...)'
        when no test was running, ' in tests/x.py::t: rank 1 of 2 still running, ... (...)' when pytest said
        which ranks were still in it, or '' when unknown."""
        if self.collected is None and not (self.running or self.last_finished):
            return ""
        if self.interrupted is not None:
            text = f" in {self.running}: {_ranks_still_running(self.interrupted)}"
        elif self.running:
            text = f" while running {self.running}"
        else:
            text = f" after {self.last_finished}" if self.last_finished else ""
        if self.collected is not None:
            left = max(0, self.collected - self.finished)
            text += f" ({self.finished} of {self.collected} tests finished, {left} not run)"
        return text

    def interrupted_stacks(self) -> str:
        """The Python stacks of the ranks still running when pytest was interrupted, one section a rank."""
        if self.interrupted is None:
            return ""
        event = self.interrupted
        return "".join(
            f"\n---- rank {rank} of {event.world_size} when interrupted; its stack ----\n{stack.rstrip()}"
            for rank, stack in zip(event.running, event.stacks, strict=False)
            if stack.strip()
        )


def _ranks_still_running(event: Interrupted) -> str:
    """'rank 1 of 2 still running, in tests/t.py:6 test_hang (rank 0 finished the test body)'."""
    if not event.running:
        return f"all {event.world_size} ranks had finished the test body"
    where = dict(zip(event.running, event.locations, strict=False))
    where = {rank: location for rank, location in where.items() if location}
    if len(event.running) == 1:
        rank = event.running[0]
        text = f"rank {rank} of {event.world_size} still running"
        text += f", in {where[rank]}" if rank in where else ""
    else:
        text = f"ranks {_rank_list(event.running)} of {event.world_size} still running"
        if where:
            text += " (" + "; ".join(f"rank {rank} in {location}" for rank, location in where.items()) + ")"
    if event.finished:
        many = len(event.finished) > 1
        text += f" ({'ranks' if many else 'rank'} {_rank_list(event.finished)} finished the test body)"
    return text


def _rank_list(ranks: Iterable[int]) -> str:
    return ", ".join(str(rank) for rank in sorted(ranks))


def read_progress(results_dir: Path) -> ProgressSoFar:
    """How far the cell got, from the progress events it left (bounded read, unreadable lines skipped)."""
    progress = ProgressSoFar()
    try:
        data = read_regular(results_dir / PROGRESS_JSONL, HARVESTED_FILES[PROGRESS_JSONL], tail=True)
    except (OSError, UnsafeResultFile):
        return progress
    started: dict[str, None] = {}
    interrupted: Interrupted | None = None
    for line in data.splitlines():
        event = parse_event_line(line)
        if isinstance(event, Collected):
            progress.collected = event.count
        elif isinstance(event, Started):
            started[event.nodeid] = None
        elif isinstance(event, Reported) and event.when == "teardown":
            started.pop(event.nodeid, None)
            progress.finished += 1
            progress.last_finished = event.nodeid
            if event.outcome == "failed":
                progress.counts.errors += 1
        elif isinstance(event, Reported) and (event.when == "call" or event.outcome != "passed"):
            # A test's outcome: its call's, or a setup that failed (an error) or skipped.
            counts = progress.counts
            if event.when == "setup" and event.outcome == "failed":
                counts.errors += 1
            elif event.outcome == "skipped" and event.known_gap:
                counts.known_gaps += 1
            else:
                setattr(counts, event.outcome, getattr(counts, event.outcome) + 1)
        elif isinstance(event, Interrupted):
            interrupted = event
    progress.running = next(reversed(started), "") if started else ""
    # Only about the test still running: an earlier test's event (a line the cell's code forged, say) is not.
    if interrupted is not None and interrupted.nodeid == progress.running:
        progress.interrupted = interrupted
    return progress


def write_completion_record(result: CellResult, cell_dir: Path) -> None:
    """result.json: written last, so a cell directory that has it finished, and one without did not."""
    if cell_dir.is_dir() and not cell_dir.is_symlink():
        write_json(cell_dir / RESULT_JSON, result.to_json())


def read_completion_record(cell_dir: Path) -> CellResult | None:
    """The cell's result.json, or None when it has none (the cell did not finish).

    UnsafeResultFile or ValueError when there is one that is a link or not JSON; ResultFormatError (a
    ValueError naming the key) when it is JSON but not a result the harness wrote.
    """
    try:
        document = read_json(cell_dir / RESULT_JSON)
    except FileNotFoundError:
        return None
    return CellResult.from_json(document)


def write_cell_json(cell: Cell, cell_dir: Path) -> Path:
    """Write cell.json into `cell_dir` (created if needed); returns its path."""
    cell_dir.mkdir(parents=True, exist_ok=True)
    write_json(cell_dir / CELL_JSON, cell.to_json())
    return cell_dir / CELL_JSON
