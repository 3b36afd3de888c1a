"""The report's bandwidth section in Markdown: the bench verdicts' figures, then what went wrong."""

from __future__ import annotations

from harness.bench.floors import Floor
from harness.bench.options import DISPATCH_COMBINE, format_size
from harness.bench.verdict import BenchOutcome, unmeasured_floors
from harness.common.untrusted_text import markdown_text


def bench_markdown(
    outcomes: list[BenchOutcome], floors: list[Floor], scope: set[tuple[str, int]] | None = None
) -> list[str]:
    """The report's bandwidth section: figures per device and world size, then floors missed or unchecked.

    `scope`: the (device, world size) pairs the report expected; floors elsewhere are not "not measured".
    """
    if not outcomes and not floors:
        return []
    lines = ["## Bandwidth", ""]
    if outcomes:
        lines += [
            "| device | ws | op | at | busbw GB/s | peak GB/s | verdict |",
            "|---|---|---|---|---|---|---|",
        ]
    for outcome in outcomes:
        verdict = "❌" if outcome.failed else "✅"
        # A bench document is read from a results directory: its words are shown, never interpreted.
        where = f"| {markdown_text(outcome.device, in_table=True)} | {outcome.world_size} "
        if outcome.error:
            first = outcome.error.strip().splitlines()[0] if outcome.error.strip() else "unknown error"
            lines.append(f"{where}| bench | - | - | - | 💥 {markdown_text(first[:300], in_table=True)} |")
            continue
        for figure in outcome.figures():
            if figure["op"] == DISPATCH_COMBINE and "uneven_over_equal" in figure:
                lines.append(
                    f"{where}| dispatch_combine, uneven | {figure['tokens']} tokens "
                    f"| {figure['uneven_over_equal']:.2f}x the equal round trip | - | {verdict} |"
                )
            elif figure["op"] == DISPATCH_COMBINE:
                lines.append(
                    f"{where}| dispatch_combine | {figure['tokens']} tokens "
                    f"| {figure['speedup_vs_naive']:.2f}x vs naive | - | {verdict} |"
                )
            else:
                op = markdown_text(figure["op"], in_table=True)
                lines.append(
                    f"{where}| {op} | {format_size(figure['bytes'])} | {figure['busbw_gbps']:.2f} "
                    f"| {figure['peak_busbw_gbps']:.2f} | {verdict} |"
                )
    lines.append("")
    problems = [
        f"- ❌ wrong result, {markdown_text(o.device)} ws{o.world_size}: {markdown_text(line)}"
        for o in outcomes
        for line in o.incorrect
    ]
    problems += [f"- ❌ floor missed: {markdown_text(v.message())}" for o in outcomes for v in o.violations]
    problems += [
        f"- ⚠️ not checked (no row at its sizes): {f.describe()} ({f.source})"
        for o in outcomes
        for f in o.unchecked
    ]
    problems += [
        f"- ⚠️ not measured: {floor.describe()} at ws{world_size} ({floor.source}): no bench document for "
        f"{floor.device} ws{world_size}"
        for floor, world_size in unmeasured_floors(floors, outcomes, scope)
    ]
    if problems:
        lines += [*problems, ""]
    elif floors:
        lines += [f"Every measured figure meets its floor ({len(floors)} floors).", ""]
    return lines
