"""`harness compare BASE NEW`: what changed between two runs, merged CI artifacts or qualification records.

`outcomes.py` reads each side and compares cells, tests and environments; `bench_rows.py` compares bench
rows with their noise; `changes.py` holds the vocabulary of changes, the --allow rules and the exit code;
`render.py` prints the terminal table and writes the Markdown.
"""

from __future__ import annotations

from pathlib import Path

from harness.results.compare.bench_rows import compare_bench
from harness.results.compare.changes import AllowRule, Comparison
from harness.results.compare.outcomes import compare_cells, environment_changes, load_side


def compare(base: Path, new: Path, *, threshold: float, allow: list[AllowRule]) -> Comparison:
    """Read both sides and say what changed from BASE to NEW; `allow` marks accepted regressions."""
    before, after = load_side(base, "BASE"), load_side(new, "NEW")
    cells, changes = compare_cells(before, after)
    changes += environment_changes(before, after)
    bench, bench_changes = compare_bench(before.bench, after.bench, threshold)
    notes = [f"BASE: {note}" for note in before.notes] + [f"NEW: {note}" for note in after.notes]
    comparison = Comparison(str(base), str(new), cells, changes + bench_changes, bench, threshold, notes)
    comparison.apply(allow)
    return comparison
