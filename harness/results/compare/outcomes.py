"""One side of a comparison read, and what changed between two sides' cells, tests and environments.

A side is whatever `harness report` merges (a run directory, CI artifacts, a record folder holding run
directories), read with `merge_results`; a folder with bench documents only is a side without cells. Each
cell's tests come from its junit.xml, streamed by `scan_junit`; a record that kept only the run's merged
junit.xml (one suite per cell, named by its id) is read from that instead.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.bench.verdict import BenchOutcome, judge_bench
from harness.common.errors import ConfigurationError
from harness.results.bench_documents import find_bench_documents
from harness.results.cell_result import CellResult
from harness.results.compare.changes import CellRow, Change
from harness.results.files import JUNIT_XML, SUMMARY_JSON, UnsafeResultFile
from harness.results.junit import clip, node_id_of, scan_junit
from harness.results.merge import expand_inputs, merge_results

# A test's outcome: its status and, for skips, expected failures and failures, the reason's first line.
Outcome = tuple[str, str]
FAILING = ("failed", "error", "xpassed")
# Cells whose junit.xml lists every test they have: only there is a test missing from NEW "gone".
RAN_TO_END = ("passed", "failed")
XPASS_STRICT = "[XPASS(strict)]"


@dataclass
class Side:
    """One side: its cells (summary.json's format), each cell's tests (None: no junit.xml), its bench."""

    label: str
    cells: dict[str, CellResult]
    tests: dict[str, dict[str, Outcome] | None]
    bench: list[BenchOutcome] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def load_side(path: Path, label: str) -> Side:
    """Read a results directory (run, artifacts, record) as one side; ConfigurationError on bad input."""
    try:
        expand_inputs([path])
    except ConfigurationError:
        documents = find_bench_documents(path) if path.is_dir() else []
        if not documents:
            raise
        bench, notes = one_document_per_pair([judge_bench(where, doc, []) for where, doc in documents], path)
        return Side(label, {}, {}, bench, notes)
    report = merge_results([path])
    cells = {cell.id: cell for cell in report.cells}
    tests = {cell_id: _cell_tests(cell) for cell_id, cell in cells.items()}
    lacking = {cell_id for cell_id, found in tests.items() if found is None}
    lacking &= {cell_id for cell_id, cell in cells.items() if cell.status in RAN_TO_END}
    if lacking:
        tests.update(_tests_of_merged_junits(report.summary.merged_from or [], lacking))
    bench, notes = one_document_per_pair(report.bench, path)
    return Side(label, cells, tests, bench, [*report.summary.notes, *notes])


def one_document_per_pair(outcomes: list[BenchOutcome], root: Path) -> tuple[list[BenchOutcome], list[str]]:
    """One bench document per device and world size: the one nearest `root` (a record's own, not those of
    its earlier commits in subfolders), then the first by path; a note names each one left out."""
    chosen: dict[tuple[str, int], BenchOutcome] = {}
    for outcome in sorted(outcomes, key=lambda o: (len(o.path.parts), str(o.path))):
        chosen.setdefault((outcome.device, outcome.world_size), outcome)
    kept = {id(outcome) for outcome in chosen.values()}
    notes = [
        f"bench {o.device} ws{o.world_size}: compared "
        f"{os.path.relpath(chosen[(o.device, o.world_size)].path, root)}, not {os.path.relpath(o.path, root)}"
        for o in outcomes
        if id(o) not in kept
    ]
    return list(chosen.values()), notes


def case_outcome(case: ET.Element) -> Outcome:
    """A JUnit testcase's status (passed, failed, error, xpassed, skipped, xfailed) and reason."""
    for child in case:
        message = (child.get("message") or child.text or "").strip()
        reason = clip(message.splitlines()[0]) if message else ""
        if child.tag == "failure":
            return ("xpassed" if XPASS_STRICT in message else "failed"), reason
        if child.tag == "error":
            return "error", reason
        if child.tag == "skipped":
            return ("xfailed" if child.get("type") == "pytest.xfail" else "skipped"), reason
    return "passed", ""


_RANK = {"error": 0, "failed": 1, "xpassed": 2, "xfailed": 3, "skipped": 4, "passed": 5}


def _record(tests: dict[str, Outcome], node_id: str, outcome: Outcome) -> None:
    # A test that also errored in teardown has two testcases of one id: the worse one counts.
    previous = tests.get(node_id)
    if previous is None or _RANK[outcome[0]] < _RANK[previous[0]]:
        tests[node_id] = outcome


def _cell_tests(cell: CellResult) -> dict[str, Outcome] | None:
    """The cell's tests from its own junit.xml, or None when it has none (or it cannot be read)."""
    if not cell.results_dir:
        return None
    tests: dict[str, Outcome] = {}
    try:
        scan_junit(
            Path(cell.results_dir) / JUNIT_XML,
            lambda case, suite: _record(tests, node_id_of(case), case_outcome(case)),
        )
    except (OSError, ValueError, UnsafeResultFile):
        return None
    return tests


def _tests_of_merged_junits(inputs: list[str], wanted: set[str]) -> dict[str, dict[str, Outcome]]:
    """The tests of the `wanted` cells from the merged junit.xml of each run directory among `inputs`."""
    found: dict[str, dict[str, Outcome]] = {}
    for directory in map(Path, inputs):
        if (directory / SUMMARY_JSON).is_file():
            _read_merged_junit(directory / JUNIT_XML, wanted, found)
    return found


def _read_merged_junit(path: Path, wanted: set[str], found: dict[str, dict[str, Outcome]]) -> None:
    """Add to `found` the tests of each `wanted` cell not found yet whose suite the merged junit.xml has."""
    suites: dict[int, str] = {}

    def on_suite(element: ET.Element, number: int) -> None:
        name = element.get("name", "")
        if name in wanted and name not in found:
            suites[number] = name

    def on_case(case: ET.Element, number: int | None) -> None:
        cell_id = suites.get(number) if number is not None else None
        if cell_id is None:
            return
        # The merged document prefixes each classname with the cell id and a dot.
        classname = case.get("classname", "")
        if classname.startswith(f"{cell_id}."):
            case.set("classname", classname[len(cell_id) + 1 :])
        _record(found.setdefault(cell_id, {}), node_id_of(case), case_outcome(case))

    try:
        scan_junit(path, on_case, on_suite)
    except (OSError, ValueError, UnsafeResultFile):
        return


def compare_cells(base: Side, new: Side) -> tuple[list[CellRow], list[Change]]:
    """Per cell (matched by id): its row, and the cell's and its tests' changes."""
    rows, changes = [], []
    for cell_id in [*base.cells, *(c for c in new.cells if c not in base.cells)]:
        before, after = base.cells.get(cell_id), new.cells.get(cell_id)
        rows.append(
            CellRow(
                cell_id,
                before.status if before else "",
                after.status if after else "",
                asdict(before.counts) if before else {},
                asdict(after.counts) if after else {},
            )
        )
        changes += _cell_change(cell_id, before, after)
        base_tests, new_tests = base.tests.get(cell_id), new.tests.get(cell_id)
        if base_tests is not None and new_tests is not None and after is not None:
            changes += _test_changes(cell_id, base_tests, new_tests, ran_to_end=after.status in RAN_TO_END)
        elif before is None and new_tests is not None:
            changes += _test_changes(cell_id, {}, new_tests, ran_to_end=False)
    return rows, changes


def _cell_change(cell_id: str, before: CellResult | None, after: CellResult | None) -> list[Change]:
    if before is None and after is not None:
        kind = "cell-failed" if after.status in ("failed", "error", "incomplete") else "cell-added"
        return [Change(kind, cell_id, before="", after=after.status, detail=_reason(after))]
    if after is None and before is not None:
        kind = "cell-lost" if before.status in RAN_TO_END else "cell-dropped"
        return [Change(kind, cell_id, before=before.status, detail=_reason(before))]
    assert before is not None and after is not None
    was, now = before.status, after.status
    kind = None
    if was == "passed" and now in ("failed", "error", "incomplete"):
        kind = "cell-failed"
    elif was in RAN_TO_END and now == "skipped":
        kind = "cell-not-run"
    elif was in ("failed", "error", "incomplete") and now == "passed":
        kind = "cell-fixed"
    elif was == "skipped" and now in RAN_TO_END:
        kind = "cell-now-runs"
    elif was == now == "skipped" and before.reason != after.reason:
        kind = "reason-changed"
    if kind is None:
        return []
    detail = _reason(after if now != "passed" else before)
    return [Change(kind, cell_id, before=was, after=now, detail=detail)]


def _reason(cell: CellResult) -> str:
    return clip((cell.reason.strip().splitlines() or [""])[0])


def _test_changes(
    cell_id: str, base: dict[str, Outcome], new: dict[str, Outcome], *, ran_to_end: bool
) -> list[Change]:
    changes = []
    for node_id in [*base, *(n for n in new if n not in base)]:
        was, now = base.get(node_id), new.get(node_id)
        kind = _test_kind(was, now, ran_to_end)
        if kind is None:
            continue
        detail = (now or was or ("", ""))[1]
        if kind == "reason-changed" and was is not None:
            detail = f"{was[1]} → {detail}"
        changes.append(Change(kind, cell_id, node_id, was[0] if was else "", now[0] if now else "", detail))
    return changes


def _test_kind(was: Outcome | None, now: Outcome | None, ran_to_end: bool) -> str | None:
    """The kind of change from one outcome of a test to the other, or None when nothing worth saying."""
    if was is None:
        return None if now is None else "new-failing" if now[0] in FAILING else "new"
    if now is None:
        return "gone" if ran_to_end else None
    (before, why_before), (after, why_after) = was, now
    if after == "xpassed" and before != "xpassed":
        return "xpass"
    if after in FAILING and before not in FAILING:
        return "failed"
    if before in FAILING and after == "passed":
        return "fixed"
    if before == "xfailed" and after == "passed":
        return "fixed"
    if after == "xfailed" and before != "xfailed":
        return "now-xfail"
    if after == "skipped" and before != "skipped":
        return "now-skipped"
    if before == "skipped" and after == "passed":
        return "now-run"
    if before == after in ("skipped", "xfailed") and why_before != why_after:
        return "reason-changed"
    return None


# Fingerprint facts worth a line when they change, as (key, what the tables call it).
ENVIRONMENT_FACTS = (
    ("torch", "torch"),
    ("torch_cuda", "CUDA"),
    ("nccl", "NCCL"),
    ("nvidia_driver", "driver"),
    ("gpus", "GPUs"),
    ("image", "image"),
    ("image_digest", "image digest"),
    ("python", "python"),
    ("vllm", "vLLM"),
    ("oneccl", "oneCCL"),
    ("torch_xpu", "torch XPU"),
)


def environment_facts(fingerprint: dict[str, Any]) -> dict[str, str]:
    """The facts of a fingerprint (or a bench document's environment) that comparisons look at."""
    facts = {key: fingerprint.get(key) for key, _ in ENVIRONMENT_FACTS if key != "gpus"}
    gpus = fingerprint.get("nvidia_gpus")
    if isinstance(gpus, list) and gpus:
        names = sorted({str(gpu.get("name")) for gpu in gpus if isinstance(gpu, dict)})
        facts["gpus"] = f"{len(gpus)} x {' / '.join(names)}"
    return {key: str(value) for key, value in facts.items() if value not in (None, "")}


def environment_changes(base: Side, new: Side) -> list[Change]:
    """One change per fact that differs, naming the cells (and bench documents) it differs in."""
    where: dict[tuple[str, str, str], list[str]] = {}
    pairs = [
        (cell_id, base.cells[cell_id].fingerprint, new.cells[cell_id].fingerprint)
        for cell_id in base.cells
        if cell_id in new.cells
    ]
    base_bench = {(o.device, o.world_size): o.environment for o in base.bench}
    pairs += [
        (f"bench-{o.device}-ws{o.world_size}", base_bench[(o.device, o.world_size)], o.environment)
        for o in new.bench
        if (o.device, o.world_size) in base_bench
    ]
    for name, before, after in pairs:
        if not before or not after:
            continue
        facts_before, facts_after = environment_facts(before), environment_facts(after)
        for key, _ in ENVIRONMENT_FACTS:
            was, now = facts_before.get(key, ""), facts_after.get(key, "")
            if was != now:
                names = where.setdefault((key, was, now), [])
                if name not in names:
                    names.append(name)
    labels = dict(ENVIRONMENT_FACTS)
    return [
        Change("environment", ", ".join(names), labels[key], was or "-", now or "-")
        for (key, was, now), names in where.items()
    ]
