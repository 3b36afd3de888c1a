"""Every view of a results report, from one place: the terminal table, Markdown, GitHub annotations.

`harness run`'s final table and summary.md, `harness report`'s table and --markdown, and `harness qualify`'s
qualification.md are all rendered here from a `ResultsReport`, so they cannot drift apart.
"""

from __future__ import annotations

import re
from typing import Any

from rich.table import Table
from rich.text import Text

from harness.common.untrusted_text import markdown_block_line, markdown_code, markdown_text, terminal_text
from harness.presentation.bench_markdown import bench_markdown
from harness.presentation.github_annotations import AnnotationKind, capped_annotations
from harness.results.cell_result import NOT_RUN_STATUSES, CellResult, TestCounts, device_rank
from harness.results.junit import Failure, clip
from harness.results.report import ResultsReport

# GitHub keeps at most 1 MiB (1,048,576 bytes) of a step's summary; stay clear of it.
MARKDOWN_LIMIT_BYTES = 1_000_000
STATUS_MARK = {"passed": "✅", "failed": "❌", "skipped": "⏭️", "error": "💥", "incomplete": "⚠️"}
STATUS_STYLE = {
    "passed": "green",
    "failed": "red",
    "skipped": "yellow",
    "error": "bold red",
    "incomplete": "bold red",
}


def grid(cells: list[CellResult]) -> tuple[list[str], list[int], dict[tuple[str, int], list[CellResult]]]:
    """The device rows, the world-size columns, and the cells of each (device, world size)."""
    devices = sorted({cell.device for cell in cells}, key=device_rank)
    world_sizes = sorted({cell.world_size for cell in cells})
    cells_at: dict[tuple[str, int], list[CellResult]] = {}
    for cell in cells:
        cells_at.setdefault((cell.device, cell.world_size), []).append(cell)
    return devices, world_sizes, cells_at


def counts_text(counts: TestCounts) -> str:
    """Test counts in pytest's words and order: '2 failed, 1 passed, 3 skipped, 1 error'; 'no tests ran'."""
    words = [f"{n} {word}" for n, word in ((counts.failed, "failed"), (counts.passed, "passed")) if n]
    if counts.skipped:
        words.append(f"{counts.skipped} skipped")
    if counts.errors:
        words.append(_plural(counts.errors, "error", "errors"))
    if counts.not_run:
        words.append(f"{counts.not_run} not run")
    text = ", ".join(words) or "no tests ran"
    # Beside pytest's words, what the harness adds: retried passes, quarantined failures, holding gaps.
    if counts.flaky:
        text += f" ({counts.flaky} flaky)"
    if counts.quarantined:
        text += f" ({counts.quarantined} quarantined failed)"
    if counts.known_gaps:
        text += f" (+{counts.known_gaps} known gap{'s' if counts.known_gaps > 1 else ''})"
    return text


def cell_text(cell: CellResult) -> str:
    """A cell's entry in the grid: '[axis values ][N nodes: ]status: 1 failed, 2 passed, 1 skipped · 12s'."""
    # A multi-node cell shares its world size's column with the single-node one: say which it is.
    words = ["-".join(cell.params.values()), f"{cell.nodes} nodes" if cell.nodes > 1 else ""]
    label = f"{', '.join(word for word in words if word)}: " if any(words) else ""
    if cell.missing:
        return f"{label}missing"
    if cell.status == "skipped":
        return f"{label}skipped"
    return f"{label}{cell.status}: {counts_text(cell.counts)} · {cell.duration_s:.1f}s"


def render_table(report: ResultsReport) -> Table:
    """The device x world-size table, for the terminal (cells' text shown as it is: Text, not markup)."""
    devices, world_sizes, cells_at = grid(report.cells)
    table = Table(title="comm-harness results", show_lines=True)
    table.add_column("device")
    for world_size in world_sizes:
        table.add_column(f"ws{world_size}")
    for device in devices:
        row = [terminal_text(device)]
        for world_size in world_sizes:
            entries = cells_at.get((device, world_size), [])
            lines = [terminal_text(cell_text(c), STATUS_STYLE[c.status]) for c in entries]
            row.append(Text("\n").join(lines) if lines else Text("-"))
        table.add_row(*row)
    return table


def annotations(report: ResultsReport) -> list[str]:
    """GitHub workflow commands for failures, errored or missing cells, bench failures, skipped required."""
    items: list[tuple[AnnotationKind, str, dict[str, Any]]] = []
    for failure in report.failures:
        ranks = f" ({failure.rank_text()})" if failure.ranks else ""
        message = "\n".join([failure.summary, *failure.lines])
        where: dict[str, Any] = {"title": f"{failure.cell}: {failure.test}{ranks}"}
        if failure.file:
            where.update(file=failure.file, line=failure.line)
        items.append(("error", message, where))
    for flaky in report.flaky:
        message = "\n".join(
            [f"passed after {flaky.attempts_failed} failed attempt(s): {flaky.summary}", *flaky.lines]
        )
        where = {"title": f"flaky: {flaky.cell}: {flaky.test}"}
        if flaky.file:
            where.update(file=flaky.file, line=flaky.line)
        items.append(("error" if report.summary.strict else "warning", message, where))
    quarantine = report.quarantine
    for failure in quarantine.failures:
        title = f"quarantined: {failure.cell}: {failure.test}"
        message = f"{failure.summary}\nquarantined: {failure.reason} ({failure.issue})"
        items.append(("warning", message, {"title": title}))
    for line, entry in zip(quarantine.release_lines(), quarantine.release_candidates, strict=True):
        items.append(("notice", line, {"title": f"quarantine release candidate: {entry.test}"}))
    for cell in report.cells:
        has_failures = any(f.cell == cell.id for f in report.failures)
        if cell.status in ("error", "incomplete") and not has_failures:
            items.append(("error", cell.reason or "errored", {"title": f"{cell.id} errored"}))
        elif cell.status == "skipped" and cell.required:
            kind: AnnotationKind = "error" if report.summary.strict else "warning"
            items.append((kind, cell.reason or "skipped", {"title": f"required cell {cell.id} skipped"}))
    for outcome in report.bench:
        for text in [outcome.error, *outcome.incorrect, *(v.message() for v in outcome.violations)]:
            if text:
                items.append(("error", text, {"title": f"bench {outcome.device} ws{outcome.world_size}"}))
    return capped_annotations(items)


def render_markdown(report: ResultsReport, limit_bytes: int = MARKDOWN_LIMIT_BYTES) -> str:
    """The merged report as Markdown, at most `limit_bytes` in UTF-8 (GitHub's step summary holds 1 MiB)."""
    head = _head_lines(report)
    bench = bench_markdown(report.bench, report.floors, report.floor_scope)
    tail = _left_out_lines(report) + _problem_lines(report) + bench + _environment_lines(report)
    budget = limit_bytes - _size(head) - _size(tail) - 400  # room for the truncation notes
    failure_lines = _failure_lines(report.failures, budget) + _flaky_lines(report.flaky)
    failure_lines += _quarantine_lines(report) + _skip_reason_lines(report.cells)
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


def _head_lines(report: ResultsReport) -> list[str]:
    cells, summary = report.cells, report.summary
    counts = {status: sum(c.status == status for c in cells) for status in STATUS_MARK}
    missing = sum(c.missing for c in cells)
    tally = " · ".join(f"{STATUS_MARK[s]} {n} {s}" for s, n in counts.items() if n)
    if summary.merged_from is not None:
        title = "# comm-harness report"
        origin = (
            f"{_plural(len(cells), 'cell', 'cells')} from "
            f"{_plural(len(summary.merged_from), 'result directory', 'result directories')}"
        )
    else:
        title = "# comm-harness results"
        finished = summary.finished or "-"
        state = "running" if summary.exit_code is None else f"finished {finished}"
        matrix, started = markdown_code(summary.matrix), markdown_text(summary.started)
        origin = f"Matrix {matrix} · started {started} · {markdown_text(state)}"
    lines = [
        title,
        "",
        f"{origin} · {tally or 'no cells yet'}"
        + (f" · {missing} missing" if missing else "")
        + f" · exit code {report.exit_code}"
        + (" · strict" if summary.strict else ""),
        "",
    ]
    devices, world_sizes, cells_at = grid(cells)
    if cells:
        lines += ["| device | " + " | ".join(f"ws{ws}" for ws in world_sizes) + " |"]
        lines += ["|---|" + "---|" * len(world_sizes)]
        for device in devices:
            row = [
                "<br>".join(_marked(c) for c in cells_at.get((device, ws), []))
                or "-"
                for ws in world_sizes
            ]
            lines.append(f"| {markdown_text(device, in_table=True)} | " + " | ".join(row) + " |")
        lines.append("")
    if summary.pending:
        lines += [f"Not finished: {', '.join(markdown_text(p) for p in summary.pending)}", ""]
    notes = summary.notes
    for note in notes:
        lines.append(f"- note: {markdown_text(note)}")
    return lines + ([""] if notes else [])


def _marked(cell: CellResult) -> str:
    return f"{STATUS_MARK[cell.status]} {markdown_text(cell_text(cell), in_table=True)}"


def _plural(count: int, singular: str, plural: str) -> str:
    return f"{count} {singular if count == 1 else plural}"


def _failure_lines(failures: list[Failure], budget: int) -> list[str]:
    if not failures:
        return []
    lines = ["## Failures", ""]
    used = _size(lines)
    for shown, failure in enumerate(failures):
        ranks = f" · {failure.rank_text()}" if failure.ranks else ""
        where = f" · {markdown_code(f'{failure.file}:{failure.line}')}" if failure.file else ""
        body = [markdown_block_line(line) for line in [failure.summary, *failure.lines]]
        if failure.more_lines:
            more = f"… {failure.more_lines} more lines: see junit.xml of {failure.cell}"
            body.append(markdown_block_line(more))
        fence = _fence(body)
        heading = f"### {markdown_text(failure.cell)} · {markdown_code(failure.test)}{ranks}{where}"
        block = [heading, "", fence, *body, fence, ""]
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


def _flaky_lines(flaky: list[Failure]) -> list[str]:
    """One line per flaky test: it passed on a retry on fresh ranks, after this failure."""
    if not flaky:
        return []
    lines = ["## Flaky tests (passed on a retry on fresh ranks)", ""]
    for test in flaky:
        lines.append(
            f"- {markdown_text(test.cell)} · {markdown_code(test.test)} · "
            f"{test.attempts_failed} failed attempt(s), first: {markdown_code(test.summary)}"
        )
    return lines + [""]


def _quarantine_lines(report: ResultsReport) -> list[str]:
    """The quarantined tests that failed (not failing their cells), and the entries that could be released."""
    quarantine = report.quarantine
    lines: list[str] = []
    if quarantine.failures:
        lines += ["## Quarantined tests that failed (their cells' verdicts leave them out)", ""]
        lines += [
            f"- {markdown_text(f.cell)} · {markdown_code(f.test)} · {markdown_code(f.summary)} · "
            f"quarantined: {markdown_text(f.reason)} ({markdown_text(f.issue)})"
            for f in quarantine.failures
        ] + [""]
    if quarantine.release_candidates:
        lines += ["## Quarantined tests to release (passed every attempt in every cell of this run)", ""]
        lines += [
            f"- {markdown_code(e.test)} · {e.ran} run(s) · quarantined: {markdown_text(e.reason)} "
            f"({markdown_text(e.issue)})"
            for e in quarantine.release_candidates
        ] + [""]
    return lines


def _skip_reason_lines(cells: list[CellResult]) -> list[str]:
    """Per cell with skipped tests, their distinct reasons, most frequent first: '- cell · 3 × reason'."""
    lines: list[str] = []
    for cell in cells:
        ranked = sorted(cell.skip_reasons.items(), key=lambda item: (-item[1], item[0]))
        lines += [f"- {markdown_text(cell.id)} · {n} × {markdown_text(reason)}" for reason, n in ranked]
    return ["## Skipped tests, by reason", "", *lines, ""] if lines else []


def _left_out_lines(report: ResultsReport) -> list[str]:
    """Failed tests read but not detailed (over FAILURE_DETAILS in a cell): how many, per cell."""
    lines = [
        f"… {count} more failed tests of {cell_id}: see its junit.xml"
        for cell_id, count in report.failures_left_out.items()
    ]
    return lines + [""] if lines else []


def _fence(lines: list[str]) -> str:
    """A code fence longer than any run of backticks inside, so a traceback cannot close it early."""
    longest = max((len(run) for line in lines for run in re.findall("`+", line)), default=0)
    return "`" * max(3, longest + 1)


def _problem_lines(report: ResultsReport) -> list[str]:
    problems = [c for c in report.cells if c.status in NOT_RUN_STATUSES]
    if not problems:
        return []
    lines = ["## Skipped, errored and missing cells", "", "| cell | status | required | reason |"]
    lines.append("|---|---|---|---|")
    for cell in problems:
        status = "missing" if cell.missing else cell.status
        reason = markdown_text(clip((cell.reason.strip().splitlines() or [""])[0]), in_table=True)
        cell_id = markdown_text(cell.id, in_table=True)
        lines.append(f"| {cell_id} | {status} | {'yes' if cell.required else 'no'} | {reason} |")
    return lines + [""]


def _environment_lines(report: ResultsReport) -> list[str]:
    ran = [c for c in report.cells if c.fingerprint]
    if not ran:
        return []
    lines = [
        "## Environments",
        "",
        "| cell | host | torch | CUDA | NCCL | oneCCL | driver | GPUs | image |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for cell in ran:
        fp = cell.fingerprint
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
        row = [markdown_text(value or "-", in_table=True) for value in [cell.id, *values]]
        lines.append("| " + " | ".join(row) + " |")
    return lines + [""]


