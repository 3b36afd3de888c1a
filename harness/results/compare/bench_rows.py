"""Bench rows of two runs compared with their noise: slower or faster only beyond what the repeats allow.

A bench document keeps, per row, the median of its repeats and (overhead pairs, dispatch+combine) the best
repeat; the lower half of a run's repeats lies between the two. The rule, per row found on both sides:

    interval of NEW/BASE = [NEW best / BASE median, NEW median / BASE best]
    slower  when its low end is above 1 + threshold: NEW's fastest repeat is slower than BASE's median by
            more than the threshold, so every NEW repeat is slower than half of BASE's;
    faster  when its high end is below 1 / (1 + threshold); otherwise within noise.

With n repeats of one distribution on each side, NEW's fastest beats none of BASE's faster half with
probability C(2n - m, n - m) / C(2n, n), m = ceil(n / 2) (3.5 % at 7 repeats, 8e-5 at 21), before the
threshold (default 5 %) lowers it further; a fixed floor on one number has no such bound. A row that keeps
only its median (collective rows without an overhead twin) borrows its run's spread at the same message
size (median/best - 1 of the rows that keep both, the largest); with none there, its interval is the
ratio of medians alone, judged against the threshold. Rows of fewer than MIN_REPEATS repeats (the bench's
--quick) are never slower or faster: their interval is printed, the verdict is "within noise".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import jsonschema

from harness.bench.bandwidth import COLLECTIVES
from harness.bench.dispatch_combine import NAIVE_REFERENCE
from harness.bench.options import DISPATCH_COMBINE, format_size
from harness.bench.results import DOCUMENT_SCHEMA
from harness.results.compare.changes import BenchRow, Change
from harness.common.errors import ConfigurationError
from harness.bench.verdict import BenchOutcome

DEFAULT_THRESHOLD = 0.05
# Fewer repeats than this (`harness bench --quick` takes 3) never give a verdict.
MIN_REPEATS = 5
_ROW_VALIDATOR = jsonschema.Draft202012Validator(DOCUMENT_SCHEMA["properties"]["rows"]["items"])


@dataclass(frozen=True)
class Timing:
    """A row's times in microseconds: the median of its repeats, the best one (None: not recorded), and
    those of its reference in the same run (None: it has none)."""

    label: str
    median_us: float
    best_us: float | None
    size: int | None  # bytes, for collective rows: where to borrow a spread from
    correct: bool
    reference_median_us: float | None = None
    reference_best_us: float | None = None
    repeats: int = 0  # 0: not recorded

    def paired(self) -> list[float]:
        """The row's time over its reference's, by medians and by best repeats; [] without a reference."""
        pairs = [(self.median_us, self.reference_median_us), (self.best_us, self.reference_best_us)]
        return [mine / theirs for mine, theirs in pairs if mine and theirs]


def _check_rows(outcome: BenchOutcome) -> None:
    for index, row in enumerate(outcome.rows):
        error = jsonschema.exceptions.best_match(_ROW_VALIDATOR.iter_errors(row))
        if error is not None:
            where = "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
            raise ConfigurationError(
                f"{outcome.path}: rows[{index}]{where}: {error.message[:200]}; not a row `harness bench` "
                "writes: regenerate the document, or remove it"
            )


def row_timings(outcome: BenchOutcome) -> dict[str, Timing]:
    """The communicator's timed rows of a bench document by label ('all_gather communicator 1 MiB'), each
    with its reference in the same run where it has one: a collective's torch.distributed twin (from the
    overhead row, with both sides' best repeats), dispatch+combine's naive reference at the same tokens.
    The references themselves (torch.distributed's rows, the naive scheme) time the host, not the code
    under test, and are not judged. ConfigurationError for a row `harness bench` would not write (a
    document from an artifact is untrusted)."""
    _check_rows(outcome)
    overhead = {(row["collective"], row["bytes"]): row for row in outcome.rows if row["op"] == "overhead"}
    naive = {
        row["tokens"]: row
        for row in outcome.rows
        if row["op"] == DISPATCH_COMBINE and row["backend"] == NAIVE_REFERENCE and not row.get("shares")
    }
    timings = {}
    for row in outcome.rows:
        if row["op"] in COLLECTIVES and row["impl"] == "communicator":
            shares = f" {row['shares']}" if row.get("shares") else ""
            label = f"{row['op']}{shares} {format_size(row['bytes'])}"
            twin = overhead.get((row["op"], row["bytes"])) if not row.get("shares") else None
            timings[label] = Timing(
                label,
                row["time_us"],
                twin.get("communicator_best_us") if twin else None,
                row["bytes"],
                row["correct"],
                twin["torch_us"] if twin else None,
                twin.get("torch_best_us") if twin else None,
                _repeats(row),
            )
        elif row["op"] == DISPATCH_COMBINE and row["backend"] != NAIVE_REFERENCE:
            shares = f" {row['shares']}" if row.get("shares") else ""
            label = f"{DISPATCH_COMBINE} {row['backend']}{shares} {row['tokens']} tokens"
            reference = naive.get(row["tokens"])
            timings[label] = Timing(
                label,
                row["time_us"],
                row.get("time_best_us"),
                None,
                row["correct"],
                reference["time_us"] if reference else None,
                reference.get("time_best_us") if reference else None,
                _repeats(row),
            )
    return timings


def _repeats(row: dict[str, Any]) -> int:
    repeats = row.get("repeats")
    return repeats if isinstance(repeats, int) and not isinstance(repeats, bool) else 0


def spreads(timings: dict[str, Timing]) -> dict[int, float]:
    """Per message size, the largest median/best - 1 among the rows that keep both."""
    found: dict[int, float] = {}
    for timing in timings.values():
        if timing.size is not None and timing.best_us and timing.best_us > 0:
            spread = max(0.0, timing.median_us / timing.best_us - 1)
            found[timing.size] = max(found.get(timing.size, 0.0), spread)
    return found


def judge_row(base: Timing, new: Timing, base_spread: float, new_spread: float, threshold: float) -> BenchRow:
    """The interval of NEW/BASE for one row and its verdict (see the module's rule)."""
    base_paired, new_paired = base.paired(), new.paired()
    if base_paired and new_paired:
        # Each run's time over its own reference: what the host adds to both cancels out.
        ratio = new_paired[0] / base_paired[0]
        low, high = min(new_paired) / max(base_paired), max(new_paired) / min(base_paired)
        basis = "paired with its reference in each run"
    else:
        ratio = new.median_us / base.median_us
        low = new.best_us / base.median_us if new.best_us else ratio / (1 + new_spread)
        high = new.median_us / base.best_us if base.best_us else ratio * (1 + base_spread)
        if base.best_us and new.best_us:
            basis = "best repeats"
        elif base_spread or new_spread:
            basis = f"spread borrowed at its size ({base_spread * 100:.0f} % / {new_spread * 100:.0f} %)"
        else:
            basis = "medians only"
    verdict = "slower" if low > 1 + threshold else "faster" if high < 1 / (1 + threshold) else "within noise"
    fewest = min(base.repeats or MIN_REPEATS, new.repeats or MIN_REPEATS)
    if verdict != "within noise" and fewest < MIN_REPEATS:
        # Of 3 repeats a side, NEW's best is above BASE's median one time in five by chance alone.
        verdict, basis = "within noise", f"{basis}; {fewest} repeats, too few to judge"
    return BenchRow("", base.label, base.median_us, new.median_us, ratio, low, high, verdict, basis)


def compare_bench(
    base: list[BenchOutcome], new: list[BenchOutcome], threshold: float
) -> tuple[list[BenchRow], list[Change]]:
    """Every row found in both sides' document of one device and world size, judged; and the changes."""
    rows: list[BenchRow] = []
    changes: list[Change] = []
    base_by_pair = {(o.device, o.world_size): o for o in base}
    new_by_pair = {(o.device, o.world_size): o for o in new}
    for pair in [*base_by_pair, *(p for p in new_by_pair if p not in base_by_pair)]:
        where = f"bench-{pair[0]}-ws{pair[1]}"
        before, after = base_by_pair.get(pair), new_by_pair.get(pair)
        if before is None or after is None:
            kind = "bench-new" if before is None else "bench-gone"
            changes.append(Change(kind, where, "document", detail=str((after or before).path)))
            continue
        if after.error:
            if not before.error:
                changes.append(Change("bench-failed", where, "document", detail=after.error.strip()[:300]))
            continue
        if before.error:
            changes.append(Change("bench-new", where, "document", detail="BASE's bench did not finish"))
            continue
        base_rows, new_rows = row_timings(before), row_timings(after)
        base_spreads, new_spreads = spreads(base_rows), spreads(new_rows)
        for label in [*base_rows, *(n for n in new_rows if n not in base_rows)]:
            was, now = base_rows.get(label), new_rows.get(label)
            if was is None or now is None:
                changes.append(Change("bench-new" if was is None else "bench-gone", where, label))
                continue
            if was.correct and not now.correct:
                changes.append(Change("bench-wrong", where, label, "correct", "wrong result"))
            if not (was.median_us > 0 and now.median_us > 0 and math.isfinite(now.median_us / was.median_us)):
                continue
            size = was.size if was.size is not None else -1
            judged = judge_row(was, now, base_spreads.get(size, 0.0), new_spreads.get(size, 0.0), threshold)
            judged.where = where
            rows.append(judged)
            if judged.verdict != "within noise":
                changes.append(
                    Change(
                        f"bench-{judged.verdict}",
                        where,
                        label,
                        f"{was.median_us:.1f} us",
                        f"{now.median_us:.1f} us",
                        f"NEW/BASE {judged.interval()} ({judged.basis})",
                    )
                )
    return rows, changes
