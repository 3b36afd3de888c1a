"""A comparison as the terminal shows it and as Markdown (a pull-request comment, a job summary).

Cell ids, test ids, reasons, fingerprints and bench labels come from the results read (untrusted): the
terminal gets them as Rich Text (`terminal_text`), Markdown as `markdown_text`/`markdown_code`.
"""

from __future__ import annotations

from collections import Counter

from rich.table import Table

from harness.common.untrusted_text import markdown_code, markdown_text, terminal_text
from harness.results.compare.bench_rows import CONFIDENCE, RESAMPLES
from harness.results.compare.changes import KINDS, BenchRow, Change, Comparison

# Changes listed one per line in the terminal; the rest are counted (all are in --json and --markdown).
TERMINAL_CHANGES = 200
MARKDOWN_LIMIT_BYTES = 1_000_000
_KIND_ORDER = {kind: index for index, kind in enumerate(KINDS)}


def ordered(changes: list[Change]) -> list[Change]:
    """Regressions first, then allowed ones, then the rest; by kind, then as found."""
    return sorted(
        changes, key=lambda c: (not c.regression or c.allowed, not c.regression, _KIND_ORDER[c.kind])
    )


def mark(change: Change) -> str:
    if change.regression:
        return "allowed" if change.allowed else "REGRESSION"
    return ""


def verdict_line(comparison: Comparison) -> str:
    """'2 regressions (1 allowed) · 5 other changes · 120 bench rows, 3 beyond noise · exit code 1'."""
    regressions = comparison.regressions()
    allowed = sum(1 for c in comparison.changes if c.allowed)
    others = sum(1 for c in comparison.changes if not c.regression)
    beyond = sum(1 for row in comparison.bench if row.verdict != "within noise")
    text = f"{len(regressions)} regression{'' if len(regressions) == 1 else 's'}"
    text += f" ({allowed} allowed)" if allowed else ""
    text += f" · {others} other change{'' if others == 1 else 's'}"
    if comparison.bench:
        text += f" · {len(comparison.bench)} bench rows compared, {beyond} beyond noise"
    return f"{text} · exit code {comparison.exit_code}"


def _counts(counts: dict[str, int]) -> str:
    if not counts:
        return ""
    return "/".join(str(counts.get(key, 0)) for key in ("passed", "failed", "skipped", "errors"))


def cell_table(comparison: Comparison) -> Table:
    table = Table(title="cells: BASE → NEW (passed/failed/skipped/errors)")
    for column in ("cell", "BASE", "NEW", "BASE tests", "NEW tests"):
        table.add_column(column)
    for row in comparison.cells:
        table.add_row(
            *(terminal_text(value or "-") for value in (row.cell, row.before, row.after)),
            _counts(row.counts_before),
            _counts(row.counts_after),
        )
    return table


def change_table(changes: list[Change]) -> Table:
    table = Table(title="changes")
    for column in ("", "kind", "cell", "test / fact / row", "BASE → NEW", "detail"):
        # Test ids are what users paste back into pytest: folded, never cut.
        table.add_column(column, overflow="fold")
    for change in changes:
        style = "bold red" if change.regression and not change.allowed else ""
        table.add_row(
            terminal_text(mark(change), style),
            change.kind,
            terminal_text(change.cell),
            terminal_text(change.test),
            terminal_text(f"{change.before or '-'} → {change.after or '-'}"),
            terminal_text(change.detail[:200]),
        )
    return table


def terminal_tables(comparison: Comparison) -> list[Table | str]:
    """What the terminal shows, table by table; strings are the harness's own lines."""
    shown: list[Table | str] = []
    if comparison.cells:
        shown.append(cell_table(comparison))
    changes = ordered(comparison.changes)
    if changes:
        shown.append(change_table(changes[:TERMINAL_CHANGES]))
    if len(changes) > TERMINAL_CHANGES:
        left = Counter(change.kind for change in changes[TERMINAL_CHANGES:])
        more = len(changes) - TERMINAL_CHANGES
        shown.append(f"… and {more} more ({_kinds(left)}): see --json or --markdown")
    return shown


def _kinds(counter: Counter[str]) -> str:
    ordered_kinds = sorted(counter.items(), key=lambda item: _KIND_ORDER[item[0]])
    return ", ".join(f"{count} {kind}" for kind, count in ordered_kinds)


def _md(text: str) -> str:
    return markdown_text(text, in_table=True) if text else "-"


def render_markdown(comparison: Comparison, limit: int = MARKDOWN_LIMIT_BYTES) -> str:
    """The comparison as GitHub Markdown, at most `limit` bytes (changes past it are counted)."""
    head = [
        f"# harness compare: {markdown_code(comparison.base)} → {markdown_code(comparison.new)}",
        "",
        f"**{verdict_line(comparison)}**",
        "",
    ]
    if comparison.cells:
        head += ["| cell | BASE | NEW | BASE tests | NEW tests |", "|---|---|---|---|---|"]
        head += [
            f"| {_md(r.cell)} | {_md(r.before)} | {_md(r.after)} | {_counts(r.counts_before) or '-'} "
            f"| {_counts(r.counts_after) or '-'} |"
            for r in comparison.cells
        ]
        head += ["", "Tests as passed/failed/skipped/errors.", ""]
    tail = _bench_markdown(comparison.bench, comparison.threshold)
    tail += [f"- note: {markdown_text(note)}" for note in comparison.notes]
    changes = ordered(comparison.changes)
    body = ["## Changes", "", "| | kind | cell | test / fact / row | BASE → NEW | detail |", "|---" * 6 + "|"]
    if not changes:
        body = ["No change in cells, tests, environment or bench rows.", ""]
    size = len("\n".join(head + tail).encode()) + 200
    for index, change in enumerate(changes):
        line = (
            f"| {mark(change)} | {change.kind} | {_md(change.cell)} | {_md(change.test)} "
            f"| {_md(change.before)} → {_md(change.after)} | {_md(change.detail[:300])} |"
        )
        size += len(line.encode()) + 1
        if size > limit:
            left = _kinds(Counter(c.kind for c in changes[index:]))
            body.append(f"\n… and {len(changes) - index} more changes ({left}): see the JSON.")
            break
        body.append(line)
    return "\n".join([*head, *body, "", *tail]) + "\n"


def _bench_markdown(rows: list[BenchRow], threshold: float) -> list[str]:
    if not rows:
        return []
    beyond = [row for row in rows if row.verdict != "within noise"]
    rules = {row.rule for row in rows}
    text = (
        f"{len(rows)} rows on both sides; {len(beyond)} beyond noise. A row is slower (faster) when its "
        f"interval of NEW/BASE lies wholly above +{threshold * 100:.0f} % (below its inverse)."
    )
    if "bootstrap" in rules:
        text += (
            f" The interval: {CONFIDENCE * 100:.0f} % percentile bootstrap of the ratio of medians, "
            f"{RESAMPLES:,} resamples of each run's repeats (a row with a reference timed in the same "
            "repeats: of its per-repeat ratios to it)."
        )
    if "best/median" in rules:
        text += (
            " Rows of a document that kept no repeats: [NEW best / BASE median, NEW median / BASE best]; "
            "rows keeping only a median borrow their run's spread at that size."
        )
    lines = ["## Bench rows", "", text, ""]
    if beyond:
        lines += ["| where | row | BASE us | NEW us | NEW/BASE | interval | verdict |", "|---" * 7 + "|"]
        lines += [
            f"| {_md(r.where)} | {_md(r.row)} | {r.base_us:.1f} | {r.new_us:.1f} "
            f"| {(r.ratio - 1) * 100:+.1f} % | {r.interval()} | {r.verdict} ({r.basis}) |"
            for r in beyond
        ]
        lines.append("")
    return lines
