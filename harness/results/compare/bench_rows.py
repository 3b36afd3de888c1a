"""Bench rows of two runs compared with their noise: slower or faster only beyond what the repeats allow.

The rule, per row found on both sides, where both documents keep every repeat ("repeats_us"):

    statistic  the ratio of medians, median(NEW repeats) / median(BASE repeats);
    interval   its 95 % percentile bootstrap interval: RESAMPLES (2,000) times, each side's repeats are
               resampled with replacement, on their own, and the ratio of the resamples' medians taken; the
               interval runs from the 2.5th to the 97.5th percentile of those ratios (numpy's generator,
               seeded by the row's label: the same documents give the same interval);
    slower     when the whole interval lies above 1 + threshold (default 5 %);
    faster     when the whole interval lies below 1 / (1 + threshold); otherwise within noise.

A row with a reference timed beside it in the same repeats (a collective's torch.distributed twin,
dispatch+combine's naive reference) is judged paired: each repeat's time is first divided by its
reference's time in the same repeat, and the statistic is the ratio of the medians of those per-repeat
ratios, so a slower host, lease or moment hits both and cancels out.

What it gives (tests/harness/test_compare.py, 200 seeded pairs of runs each): repeats of one distribution
are never slower or faster at 7 and 21 repeats with 3 % lognormal noise or host-bound bursts; with 10-30 %
noise, where the interval is wider than the threshold, up to 2.5 % of rows are beyond it (a 95 % percentile
interval of 7 medians is a little narrow); a 10 % shift at 3 % noise is slower in 195 of 200 pairs of 21
repeats, at 2 % in all. The interval says what the repeats of these two runs allow, not what another lease
or another load would measure: where the host's load changes between the runs (two runs on a shared,
loaded machine), rows move beyond their repeats, the unpaired ones most.

Documents from before the bench kept every repeat have each row's median and (overhead pairs,
dispatch+combine) best repeat, and a row missing "repeats_us" on either side is judged by the rule of then,
which says so in its basis: the interval of NEW/BASE is [NEW best / BASE median, NEW median / BASE best],
slower when its low end is above 1 + threshold (NEW's fastest repeat slower than BASE's median: for one
distribution, chance C(2n - m, n - m) / C(2n, n), m = ceil(n / 2), 3.5 % at 7 repeats, 8e-5 at 21, before
the threshold); a row that keeps only its median borrows its run's spread at the same message size (median
/ best - 1 of the rows that keep both, the largest), and with none there its interval is the ratio of
medians alone. Under either rule, rows of fewer than MIN_REPEATS repeats (the bench's --quick) are never
slower or faster: their interval is printed, the verdict is "within noise".
"""

from __future__ import annotations

import math
import statistics
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jsonschema
import numpy

from harness.bench.bandwidth import COLLECTIVES
from harness.bench.dispatch_combine import NAIVE_REFERENCE
from harness.bench.options import DISPATCH_COMBINE, format_size
from harness.bench.results import DOCUMENT_SCHEMA
from harness.bench.verdict import BenchOutcome
from harness.common.errors import ConfigurationError
from harness.results.compare.changes import BenchRow, Change

DEFAULT_THRESHOLD = 0.05
# Fewer repeats than this (`harness bench --quick` takes 3) never give a verdict.
MIN_REPEATS = 5
CONFIDENCE = 0.95
RESAMPLES = 2000
# A document is untrusted: resampling holds RESAMPLES x repeats numbers per side in memory at once.
MAX_REPEATS = 1000
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
    # Every repeat's time and its reference's in the same repeats; () in documents from before they were kept.
    repeats_us: tuple[float, ...] = ()
    reference_repeats_us: tuple[float, ...] = ()

    def paired(self) -> list[float]:
        """The row's time over its reference's, by medians and by best repeats; [] without a reference."""
        pairs = [(self.median_us, self.reference_median_us), (self.best_us, self.reference_best_us)]
        return [mine / theirs for mine, theirs in pairs if mine and theirs]

    def per_repeat_ratios(self) -> list[float]:
        """Each repeat's time over its reference's in the same repeat; [] without both."""
        if not self.repeats_us or len(self.reference_repeats_us) != len(self.repeats_us):
            return []
        return [
            mine / theirs for mine, theirs in zip(self.repeats_us, self.reference_repeats_us, strict=True)
        ]


def _check_rows(outcome: BenchOutcome) -> None:
    for index, row in enumerate(outcome.rows):
        error = jsonschema.exceptions.best_match(_ROW_VALIDATOR.iter_errors(row))
        if error is not None:
            where = "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
            raise ConfigurationError(
                f"{outcome.path}: rows[{index}]{where}: {error.message[:200]}; not a row `harness bench` "
                "writes: regenerate the document, or remove it"
            )
        if len(row.get("repeats_us") or ()) > MAX_REPEATS:
            raise ConfigurationError(
                f"{outcome.path}: rows[{index}].repeats_us: {len(row['repeats_us'])} repeats, more than the "
                f"{MAX_REPEATS} `harness compare` resamples; bench with fewer --repeats"
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
    # The twins' own rows hold torch.distributed's repeats, timed in alternation with the communicator's.
    baselines = {
        (row["op"], row["bytes"]): row
        for row in outcome.rows
        if row["op"] in COLLECTIVES and row["impl"] != "communicator" and row.get("baseline")
    }
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
            reference = baselines.get((row["op"], row["bytes"])) if twin else None
            timings[label] = Timing(
                label,
                row["time_us"],
                twin.get("communicator_best_us") if twin else None,
                row["bytes"],
                row["correct"],
                twin["torch_us"] if twin else None,
                twin.get("torch_best_us") if twin else None,
                _repeats(row),
                _repeat_times(row),
                _repeat_times(reference) if reference else (),
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
                _repeat_times(row),
                _repeat_times(reference) if reference else (),
            )
    return timings


def _repeat_times(row: dict[str, Any]) -> tuple[float, ...]:
    """The row's "repeats_us", or () where it has none or one that cannot be resampled (a time of 0)."""
    times = tuple(row.get("repeats_us") or ())
    return times if all(time > 0 and math.isfinite(time) for time in times) else ()


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
    """The interval of NEW/BASE for one row and its verdict: the bootstrap where both sides kept every
    repeat, the best/median rule otherwise (see the module's rules)."""
    if base.repeats_us and new.repeats_us:
        return _judge_repeats(base, new, threshold)
    return _judge_best_and_median(base, new, base_spread, new_spread, threshold)


def bootstrap_ratio(base: Sequence[float], new: Sequence[float], seed: str) -> tuple[float, float, float]:
    """median(new) / median(base) and its CONFIDENCE percentile bootstrap interval (RESAMPLES resamples
    of each side on its own); `seed` (the row's label) makes it the same on every reading."""
    generator = numpy.random.default_rng(zlib.crc32(seed.encode("utf-8")))
    medians = []
    for side in (base, new):
        values = numpy.asarray(side, dtype=numpy.float64)
        picks = generator.integers(0, values.size, size=(RESAMPLES, values.size))
        medians.append(numpy.median(values[picks], axis=1))
    tail = (1 - CONFIDENCE) / 2
    low, high = numpy.quantile(medians[1] / medians[0], [tail, 1 - tail])
    return statistics.median(new) / statistics.median(base), float(low), float(high)


def _judge_repeats(base: Timing, new: Timing, threshold: float) -> BenchRow:
    base_ratios, new_ratios = base.per_repeat_ratios(), new.per_repeat_ratios()
    paired = bool(base_ratios and new_ratios)
    ratio, low, high = bootstrap_ratio(
        base_ratios if paired else base.repeats_us, new_ratios if paired else new.repeats_us, base.label
    )
    counts = (len(base.repeats_us), len(new.repeats_us))
    basis = (
        f"{CONFIDENCE * 100:.0f} % bootstrap CI of the ratio of medians, {counts[0]} vs {counts[1]} repeats"
    )
    if paired:
        basis += ", each over its reference's in the same repeat"
    return _verdict(base, new, ratio, low, high, threshold, basis, min(counts), "bootstrap")


def _judge_best_and_median(
    base: Timing, new: Timing, base_spread: float, new_spread: float, threshold: float
) -> BenchRow:
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
    older = " and ".join(side for side, timing in (("BASE", base), ("NEW", new)) if not timing.repeats_us)
    basis = f"best/median rule ({older} kept no repeats): {basis}"
    fewest = min(base.repeats or MIN_REPEATS, new.repeats or MIN_REPEATS)
    return _verdict(base, new, ratio, low, high, threshold, basis, fewest, "best/median")


def _verdict(
    base: Timing,
    new: Timing,
    ratio: float,
    low: float,
    high: float,
    threshold: float,
    basis: str,
    fewest: int,
    rule: str,
) -> BenchRow:
    verdict = "slower" if low > 1 + threshold else "faster" if high < 1 / (1 + threshold) else "within noise"
    if verdict != "within noise" and fewest < MIN_REPEATS:
        # Of 3 repeats a side, NEW's best is above BASE's median one time in five by chance alone, and every
        # resample of 3 values has one of those 3 as its median: no interval to speak of.
        verdict, basis = "within noise", f"{basis}; {fewest} repeats, too few to judge"
    return BenchRow("", base.label, base.median_us, new.median_us, ratio, low, high, verdict, basis, rule)


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
                        f"NEW/BASE {judged.summary()}",
                    )
                )
    return rows, changes
