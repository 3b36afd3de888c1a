"""`harness report`'s engine: merge results of cells run on different machines into one summary.

Inputs are `harness run --out` directories (summary.json), single cell directories (cell.json, junit.xml),
or directories holding either (as `actions/download-artifact` lays artifacts out). A cell found in several
inputs is taken from the one where it ran (a run beats a skip; among runs, the later input wins). Cells of
the matrix found in no input are "missing": their job died before uploading anything, which is an error.
The summary keeps report.py's format, so `render_table` and `merged_junit` serve it unchanged.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.bench.floors import Floor
from harness.errors import EXIT_OK, EXIT_TEST_FAILURES, ConfigurationError
from harness.executors.results import read_completion_record, read_junit_counts
from harness.github import AnnotationKind, capped_annotations
from harness.model import FAILING_STATUSES, NOT_RUN_STATUSES, Cell, CellResult
from harness.qualify import BenchOutcome, bench_markdown, find_bench_documents, judge_bench
from harness.report import (
    FORMAT_VERSION,
    STATUS_MARK,
    compute_exit_code,
    load_summary,
    now_iso,
    read_junit_root,
)
from harness.results.files import CELL_JSON, JUNIT_XML, RESULT_JSON, SUMMARY_JSON, UnsafeResultFile, read_json

# GitHub keeps at most 1 MiB (1,048,576 bytes) of a step's summary; stay clear of it.
MARKDOWN_LIMIT_BYTES = 1_000_000
TRACEBACK_LINES = 12
LINE_CHARS = 240
DEVICE_ORDER = ("cpu", "cuda", "xpu")
MISSING_REASON = "no results: found in none of the inputs (its job died or uploaded nothing; see its log)"
_RANKS = re.compile(r"\branks? ((?:\d+, )*\d+) of (\d+)\b")
_LOCATION = re.compile(r"^(?P<file>[^\s:/][^\s:]*\.py):(?P<line>\d+): ", re.MULTILINE)
_RAN = ("passed", "failed", "error", "incomplete")


@dataclass
class Failure:
    """A failed or errored test of a cell: where, which ranks, and the first lines of what it said."""

    cell: str
    test: str
    summary: str
    lines: list[str]
    more_lines: int = 0
    ranks: list[int] = field(default_factory=list)
    world_size: int | None = None
    file: str | None = None
    line: int | None = None

    def rank_text(self) -> str:
        """'rank 1 of 2', 'ranks 0, 3 of 4'."""
        noun = "rank" if len(self.ranks) == 1 else "ranks"
        return f"{noun} {', '.join(map(str, self.ranks))} of {self.world_size}"

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class MergedReport:
    """The merged summary (report.py's format plus inputs, notes, failures, bench) and its exit code."""

    summary: dict[str, Any]
    failures: list[Failure]
    bench: list[BenchOutcome]
    floors: list[Floor]
    exit_code: int
    # The (device, world size) pairs the report expected (--matrix, qualify's required cells); a floor
    # elsewhere is not reported as unmeasured. None: every floor's pairs.
    floor_scope: set[tuple[str, int]] | None = None

    @property
    def cells(self) -> list[dict[str, Any]]:
        return self.summary["cells"]


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
        children = sorted(child for child in path.iterdir() if child.is_dir() and _is_result_dir(child))
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


def _cells_of_run(run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    summary = load_summary(run_dir)
    cells = []
    for cell in summary["cells"]:
        cell = dict(cell)
        if cell.get("results_dir"):
            cell["results_dir"] = str((run_dir / cell["results_dir"]).resolve())
        cells.append(cell)
    for cell_id in summary.get("pending") or []:
        # An interrupted run: the runner wrote cell.json before starting the cell, junit.xml if it finished.
        if (run_dir / cell_id / CELL_JSON).is_file():
            cells.append(_cell_of_dir(run_dir / cell_id))
    return summary, cells


def _cell_of_dir(cell_dir: Path) -> dict[str, Any]:
    """A cell directory's result: its completion record, or `incomplete` without one."""
    try:
        cell = Cell.from_json(read_json(cell_dir / CELL_JSON))
    except (OSError, ValueError, TypeError, AttributeError, UnsafeResultFile) as error:
        raise ConfigurationError(
            f"{cell_dir / CELL_JSON}: not a cell written by the harness ({error})."
        ) from None
    try:
        result = read_completion_record(cell_dir)
    except (OSError, ValueError, UnsafeResultFile) as error:
        result = CellResult.of_cell(cell, "error", f"its completion record is unusable: {error}")
    if result is None:
        counts = read_junit_counts(cell_dir / JUNIT_XML)
        listed = f"; its junit.xml lists {counts.total} test(s), not judged" if counts else ""
        result = CellResult.of_cell(
            cell,
            "incomplete",
            f"no completion record ({RESULT_JSON}): the run was killed or is still running{listed}",
        )
    data = result.to_json()
    data["results_dir"] = str(cell_dir.resolve())
    return data


def _missing_cell(cell: Cell) -> dict[str, Any]:
    return {
        "id": cell.id,
        "device": cell.device,
        "world_size": cell.world_size,
        "status": "error",
        "reason": MISSING_REASON,
        "executor": "",
        "counts": {"passed": 0, "failed": 0, "skipped": 0, "errors": 0},
        "duration_s": 0.0,
        "results_dir": "",
        "fingerprint": {},
        "required": cell.required,
        "backend": cell.backend,
        "params": dict(cell.params),
        "source": cell.source,
        "missing": True,
    }


def merge_results(
    paths: list[Path],
    *,
    expected: list[Cell] | None = None,
    strict: bool = False,
    floors: list[Floor] | None = None,
) -> MergedReport:
    """Merge the inputs into one report; `expected` cells found nowhere become missing (errored) cells."""
    floors = floors or []
    inputs = expand_inputs(paths)
    chosen: dict[str, tuple[dict[str, Any], Path]] = {}
    notes: list[str] = []
    starts, ends, matrices = [], [], []
    bench: list[BenchOutcome] = []
    for directory in inputs:
        if (directory / SUMMARY_JSON).is_file():
            summary, cells = _cells_of_run(directory)
            starts.append(summary.get("started"))
            ends.append(summary.get("finished"))
            matrices.append(summary.get("matrix"))
        else:
            cells = [_cell_of_dir(directory)]
        for cell in cells:
            previous = chosen.get(cell["id"])
            if previous is not None:
                ran_before, ran_now = previous[0]["status"] in _RAN, cell["status"] in _RAN
                if ran_before == ran_now:
                    notes.append(
                        f"{cell['id']} is in {previous[1]} and {directory}; kept the later, {directory}"
                    )
                elif ran_before:
                    continue
            chosen[cell["id"]] = (cell, directory)
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
        cells = [cell for cell in cells if cell["id"] in wanted]
        present = {cell["id"] for cell in cells}
        cells += [_missing_cell(cell) for cell in expected if cell.id not in present]
        order = {cell.id: position for position, cell in enumerate(expected)}
        cells.sort(key=lambda cell: order[cell["id"]])
    else:
        cells.sort(key=_grid_order)
    bench.sort(key=lambda outcome: (_device_rank(outcome.device), outcome.world_size, str(outcome.path)))
    failures = [failure for cell in cells for failure in cell_failures(cell)]
    exit_code = compute_exit_code(cells, strict=strict, interrupted=False)
    if exit_code == EXIT_OK and any(outcome.failed for outcome in bench):
        exit_code = EXIT_TEST_FAILURES
    summary = {
        "format": FORMAT_VERSION,
        "matrix": ", ".join(sorted({m for m in matrices if m})),
        "started": min((s for s in starts if s), default=None),
        "finished": max((e for e in ends if e), default=now_iso()),
        "exit_code": exit_code,
        "strict": strict,
        "host": {},
        "cells": cells,
        "pending": [],
        "merged_from": [str(directory) for directory in inputs],
        "notes": notes,
    }
    scope = None if expected is None else {(cell.device, cell.world_size) for cell in expected}
    return MergedReport(summary, failures, bench, floors, exit_code, floor_scope=scope)


def _device_rank(device: str) -> int:
    return DEVICE_ORDER.index(device) if device in DEVICE_ORDER else len(DEVICE_ORDER)


def _grid_order(cell: dict[str, Any]) -> tuple[int, int, str]:
    return _device_rank(cell["device"]), cell["world_size"], cell["id"]


def cell_failures(cell: dict[str, Any], max_lines: int = TRACEBACK_LINES) -> list[Failure]:
    """The failed and errored tests in a cell's junit.xml, each with its ranks, location and first lines."""

    if cell["status"] not in FAILING_STATUSES or not cell.get("results_dir"):
        return []
    root = read_junit_root(Path(cell["results_dir"]) / JUNIT_XML)
    if root is None:
        return []
    failures = []
    for case in root.iter("testcase"):
        for problem in [*case.findall("failure"), *case.findall("error")]:
            message = problem.get("message") or ""
            text = problem.text or ""
            summary = (message.strip().splitlines() or text.strip().splitlines() or [problem.tag])[0]
            body = [line for line in text.splitlines() if line.strip()]
            if body and body[0].strip() == summary.strip():
                body = body[1:]
            ranks, world_size = _ranks_in(summary)
            location = _LOCATION.search(text)
            failures.append(
                Failure(
                    cell=cell["id"],
                    test=node_id_of(case),
                    summary=summary[: LINE_CHARS * 2],
                    lines=[_clip(line) for line in body[:max_lines]],
                    more_lines=max(0, len(body) - max_lines),
                    ranks=ranks,
                    world_size=world_size,
                    file=location["file"] if location else None,
                    line=int(location["line"]) if location else None,
                )
            )
    return failures


def node_id_of(case: Any) -> str:
    """The pytest node id of a JUnit testcase: what users paste back into `pytest`."""
    classname, name = case.get("classname", ""), case.get("name", "")
    if not classname:
        return name
    # pytest's classname is the dotted module path, then the test classes (capitalised, by pytest's naming).
    parts = classname.split(".")
    first_class = next((i for i, part in enumerate(parts) if i and part[:1].isupper()), len(parts))
    module = "/".join(parts[:first_class]) + ".py"
    return "::".join([module, *parts[first_class:], name])


def _ranks_in(text: str) -> tuple[list[int], int | None]:
    ranks: set[int] = set()
    world_size = None
    for match in _RANKS.finditer(text):
        ranks.update(int(rank) for rank in match.group(1).split(", "))
        world_size = int(match.group(2))
    return sorted(ranks), world_size


def _clip(line: str) -> str:
    return line if len(line) <= LINE_CHARS else line[:LINE_CHARS] + " …"


def annotations(report: MergedReport) -> list[str]:
    """GitHub workflow commands for failures, errored or missing cells, bench failures, skipped required."""
    items: list[tuple[AnnotationKind, str, dict[str, Any]]] = []
    for failure in report.failures:
        ranks = f" ({failure.rank_text()})" if failure.ranks else ""
        message = "\n".join([failure.summary, *failure.lines])
        where: dict[str, Any] = {"title": f"{failure.cell}: {failure.test}{ranks}"}
        if failure.file:
            where.update(file=failure.file, line=failure.line)
        items.append(("error", message, where))
    for cell in report.cells:
        has_failures = any(f.cell == cell["id"] for f in report.failures)
        if cell["status"] in ("error", "incomplete") and not has_failures:
            items.append(("error", cell["reason"] or "errored", {"title": f"{cell['id']} errored"}))
        elif cell["status"] == "skipped" and cell["required"]:
            kind: AnnotationKind = "error" if report.summary["strict"] else "warning"
            items.append(
                (kind, cell["reason"] or "skipped", {"title": f"required cell {cell['id']} skipped"})
            )
    for outcome in report.bench:
        for text in [outcome.error, *outcome.incorrect, *(v.message() for v in outcome.violations)]:
            if text:
                items.append(("error", text, {"title": f"bench {outcome.device} ws{outcome.world_size}"}))
    return capped_annotations(items)


def render_markdown(report: MergedReport, limit_bytes: int = MARKDOWN_LIMIT_BYTES) -> str:
    """The merged report as Markdown, at most `limit_bytes` in UTF-8 (GitHub's step summary holds 1 MiB)."""
    head = _head_lines(report)
    bench = bench_markdown(report.bench, report.floors, report.floor_scope)
    tail = _problem_lines(report) + bench + _environment_lines(report)
    budget = limit_bytes - _size(head) - _size(tail) - 400  # room for the truncation notes
    failure_lines = _failure_lines(report.failures, budget)
    lines = head + failure_lines + tail
    text = "\n".join(lines) + "\n"
    if _size([text]) > limit_bytes:
        note = (
            f"\n\n… report cut at {limit_bytes} bytes (GitHub's step summary limit); see the JSON report.\n"
        )
        cut = text.encode("utf-8")[: limit_bytes - len(note.encode("utf-8"))].decode("utf-8", errors="ignore")
        text = cut[: cut.rfind("\n")] + note
    return text


def _size(lines: list[str]) -> int:
    return sum(len(line.encode("utf-8")) + 1 for line in lines)


def _head_lines(report: MergedReport) -> list[str]:
    cells, summary = report.cells, report.summary
    counts = {status: sum(c["status"] == status for c in cells) for status in STATUS_MARK}
    missing = sum(bool(c.get("missing")) for c in cells)
    tally = " · ".join(f"{STATUS_MARK[s]} {n} {s}" for s, n in counts.items() if n)
    lines = [
        "# comm-harness report",
        "",
        f"{_plural(len(cells), 'cell', 'cells')} from "
        f"{_plural(len(summary['merged_from']), 'result directory', 'result directories')} · {tally}"
        + (f" · {missing} missing" if missing else "")
        + f" · exit code {report.exit_code}"
        + (" · strict" if summary["strict"] else ""),
        "",
    ]
    devices = sorted({c["device"] for c in cells}, key=_device_rank)
    world_sizes = sorted({c["world_size"] for c in cells})
    if cells:
        lines += ["| device | " + " | ".join(f"ws{ws}" for ws in world_sizes) + " |"]
        lines += ["|---|" + "---|" * len(world_sizes)]
        for device in devices:
            row = [
                "<br>".join(
                    _cell_mark(c) for c in cells if c["device"] == device and c["world_size"] == world_size
                )
                or "-"
                for world_size in world_sizes
            ]
            lines.append(f"| {device} | " + " | ".join(row) + " |")
        lines.append("")
    for note in summary["notes"]:
        lines.append(f"- note: {note}")
    return lines + ([""] if summary["notes"] else [])


def _plural(count: int, singular: str, plural: str) -> str:
    return f"{count} {singular if count == 1 else plural}"


def _cell_mark(cell: dict[str, Any]) -> str:
    params = "-".join((cell.get("params") or {}).values())
    label = f"{params}: " if params else ""
    if cell.get("missing"):
        return f"{STATUS_MARK['error']} {label}missing"
    counts = cell["counts"]
    if cell["status"] == "skipped":
        return f"{STATUS_MARK['skipped']} {label}skipped"
    ran = counts["passed"] + counts["failed"] + counts["errors"]
    return f"{STATUS_MARK[cell['status']]} {label}{counts['passed']}/{ran} · {cell['duration_s']:.0f}s"


def _failure_lines(failures: list[Failure], budget: int) -> list[str]:
    if not failures:
        return []
    lines = ["## Failures", ""]
    used = _size(lines)
    for shown, failure in enumerate(failures):
        ranks = f" · {failure.rank_text()}" if failure.ranks else ""
        where = f" · `{failure.file}:{failure.line}`" if failure.file else ""
        body = [failure.summary, *failure.lines]
        if failure.more_lines:
            body.append(f"… {failure.more_lines} more lines: see junit.xml of {failure.cell}")
        fence = _fence(body)
        block = [f"### {failure.cell} · `{failure.test}`{ranks}{where}", "", fence, *body, fence, ""]
        if used + _size(block) > budget:
            left = len(failures) - shown
            lines += [
                f"… {left} more failure(s) not shown: the step summary is limited to 1 MiB. "
                "Every failure is in the merged junit.xml and JSON report.",
                "",
            ]
            break
        lines += block
        used += _size(block)
    return lines


def _fence(lines: list[str]) -> str:
    """A code fence longer than any run of backticks inside, so a traceback cannot close it early."""
    longest = max((len(run) for line in lines for run in re.findall("`+", line)), default=0)
    return "`" * max(3, longest + 1)


def _problem_lines(report: MergedReport) -> list[str]:
    problems = [c for c in report.cells if c["status"] in NOT_RUN_STATUSES]
    if not problems:
        return []
    lines = ["## Skipped, errored and missing cells", "", "| cell | status | required | reason |"]
    lines.append("|---|---|---|---|")
    for cell in problems:
        status = "missing" if cell.get("missing") else cell["status"]
        reason = _clip((cell["reason"].strip().splitlines() or [""])[0]).replace("|", "/")
        lines.append(f"| {cell['id']} | {status} | {'yes' if cell['required'] else 'no'} | {reason} |")
    return lines + [""]


def _environment_lines(report: MergedReport) -> list[str]:
    ran = [c for c in report.cells if c.get("fingerprint")]
    if not ran:
        return []
    lines = [
        "## Environments",
        "",
        "| cell | host | torch | CUDA | NCCL | oneCCL | driver | GPUs | image |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for cell in ran:
        fp = cell["fingerprint"]
        gpus = fp.get("nvidia_gpus") or []
        gpu_text = (
            f"{len(gpus)}x {gpus[0].get('name', '?')}"
            if gpus
            else (f"{fp['xpu_device_count']}x XPU" if fp.get("xpu_device_count") else "-")
        )
        image = fp.get("image_digest") or fp.get("image") or "-"
        values = [
            fp.get("hostname"),
            fp.get("torch"),
            fp.get("torch_cuda"),
            fp.get("nccl"),
            fp.get("oneccl"),
            fp.get("nvidia_driver"),
            gpu_text,
            image,
        ]
        lines.append(f"| {cell['id']} | " + " | ".join(str(v or "-") for v in values) + " |")
    return lines + [""]


def report_json(report: MergedReport, relative_to: Path) -> dict[str, Any]:
    """The merged summary with failures and bench outcomes; paths relative to `relative_to`."""
    summary = dict(report.summary)
    summary["cells"] = [
        {
            **cell,
            "results_dir": os.path.relpath(cell["results_dir"], relative_to) if cell["results_dir"] else "",
        }
        for cell in report.cells
    ]
    summary["failures"] = [failure.to_json() for failure in report.failures]
    summary["bench"] = [
        {**outcome.to_json(), "document": os.path.relpath(outcome.path, relative_to)}
        for outcome in report.bench
    ]
    summary["floors_checked"] = len(report.floors)
    return summary


def missing_required(report: MergedReport) -> list[str]:
    """Required cells that did not run to a verdict (skipped, errored, missing): what --strict fails on."""
    return [c["id"] for c in report.cells if c["required"] and c["status"] in NOT_RUN_STATUSES]
