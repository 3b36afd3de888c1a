"""Bandwidth floors: the least a qualified platform must measure, and the check of bench rows against them.

A floors file (floors.yaml) lists entries, each for one device, world size(s) and op, with
one bound:
- `busbw_gbps: X`: every row of that collective at `min_bytes` or more reaches X GB/s bus bandwidth
  (`shares: rank+1` or `shares: mild` narrows an uneven collective's floor to one share pattern);
- `speedup_vs_naive: X` (op dispatch_combine): the backend's round trip is X times as fast as the naive
  reference's, or faster, at `min_tokens` tokens per rank or more, each timed by its best repeat;
- `max_uneven_over_equal: X` (op dispatch_combine): the backend's round trip at mildly uneven token counts
  costs at most X times its round trip at equal ones, at `min_tokens` tokens per rank or more, each timed
  by its best repeat (the uneven row's `uneven_over_equal`);
- `max_overhead_pct: X` (op overhead, with `collective`): the communicator is at most X % slower than raw
  torch.distributed at `min_bytes` or more, judged as a paired measurement with its noise: the bench times
  the two in alternation within each repeat, so each repeat gives one ratio (communicator / torch, from the
  `repeats_us` of the collective's communicator row and of its torch.distributed baseline twin); the floor
  is missed only when the low end of the 95 % seeded bootstrap interval of the median ratio
  (harness/bench/intervals.py) is above 1 + X/100: an unchanged path is not failed by a noisy repeat, a
  path X % slower beyond what its repeats allow is. Rows from documents without repeats are judged as
  before, by the best repeats' `overhead_pct`, and a miss says so.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.bench.bandwidth import COLLECTIVES
from harness.bench.intervals import CONFIDENCE, MAX_VALUES, median_interval
from harness.bench.options import DEVICES, DISPATCH_COMBINE, format_size, parse_size
from harness.common.errors import ConfigurationError
from harness.common.yaml_locations import format_key_path, line_of, parse_yaml_with_nodes

OVERHEAD = "overhead"
BOUNDS = {
    "busbw_gbps": "min",
    "speedup_vs_naive": "min",
    "max_uneven_over_equal": "max",
    "max_overhead_pct": "max",
}
# The bounds each op may take, and the row field each bound reads (its own name unless listed).
_BOUNDS_OF_OP = {
    **{op: ("busbw_gbps",) for op in COLLECTIVES},
    DISPATCH_COMBINE: ("speedup_vs_naive", "max_uneven_over_equal"),
    OVERHEAD: ("max_overhead_pct",),
}
_ROW_FIELD = {"max_overhead_pct": "overhead_pct", "max_uneven_over_equal": "uneven_over_equal"}
_KEYS = (
    "device",
    "world_size",
    "op",
    "collective",
    "dtype",
    "shares",
    "min_bytes",
    "min_tokens",
    *BOUNDS,
    "note",
)


@dataclass(frozen=True)
class Floor:
    """One bound from a floors file."""

    device: str
    world_sizes: tuple[int, ...]
    op: str
    bound: str  # a key of BOUNDS
    value: float
    min_bytes: int = 0
    min_tokens: int = 0
    collective: str | None = None
    dtype: str | None = None
    shares: str | None = None  # an uneven collective's share pattern (the row's "shares"); None: any
    source: str = ""  # "floors.yaml:12"

    def describe(self) -> str:
        """'cuda ws4 all_reduce >= 256M: busbw_gbps >= 280'."""
        what = self.op if self.collective is None else f"{self.op} of {self.collective}"
        what += f" ({self.shares} shares)" if self.shares else ""
        scope = f" >= {format_size(self.min_bytes)}" if self.min_bytes else ""
        scope += f" >= {self.min_tokens} tokens" if self.min_tokens else ""
        relation = ">=" if BOUNDS[self.bound] == "min" else "<="
        sizes = ",".join(str(n) for n in self.world_sizes)
        return f"{self.device} ws{sizes} {what}{scope}: {self.bound} {relation} {self.value:g}"

    def matches(self, row: dict[str, Any]) -> bool:
        """Whether this floor bounds `row` (device and world size are checked by the caller)."""
        if row.get("op") != self.op or row.get("baseline"):
            return False
        if self.collective is not None and row.get("collective") != self.collective:
            return False
        if self.dtype is not None and row.get("dtype") != self.dtype:
            return False
        if self.shares is not None and row.get("shares") != self.shares:
            return False
        if row.get("bytes", 0) < self.min_bytes or row.get("tokens", 0) < self.min_tokens:
            return False
        # dispatch_combine rows differ in what they carry: the backend's row its speedup, the uneven row
        # its ratio to the equal one.
        return self.op != DISPATCH_COMBINE or _ROW_FIELD.get(self.bound, self.bound) in row


@dataclass(frozen=True)
class FloorViolation:
    """A row that misses a floor."""

    floor: Floor
    row: dict[str, Any]
    measured: float  # an overhead floor judged on repeats: the median paired overhead, in %
    # An overhead floor judged on repeats: the interval of the overhead in % and the repeats it came from.
    interval: tuple[float, float] | None = None
    repeats: int = 0

    def message(self) -> str:
        """What missed which floor, by how much, on what basis, and where the floor is written."""
        row = self.row
        what = row["op"] if self.floor.collective is None else f"{row['op']} of {row['collective']}"
        what += f" ({row['shares']} shares)" if row.get("shares") else ""
        at = f"{format_size(row['bytes'])}" if "bytes" in row else f"{row.get('tokens')} tokens"
        relation = "<" if BOUNDS[self.floor.bound] == "min" else ">"
        basis = ""
        if self.interval is not None:
            low, high = self.interval
            basis = (
                f" (median of {self.repeats} paired repeats; its {CONFIDENCE * 100:.0f} % bootstrap interval "
                f"{low:+.3g} to {high:+.3g} lies above the floor)"
            )
        elif self.floor.bound == "max_overhead_pct":
            basis = " (no repeats recorded: judged by the best repeat)"
        return (
            f"{row.get('device')} ws{row.get('world_size')} {what} at {at}: {self.floor.bound} "
            f"{self.measured:.3g} {relation} floor {self.floor.value:g}{basis} ({self.floor.source})"
        )


def measured_value(floor: Floor, row: dict[str, Any]) -> float:
    """The figure of `row` that `floor` bounds."""
    return float(row[_ROW_FIELD.get(floor.bound, floor.bound)])


def applicable(floors: Iterable[Floor], device: str, world_size: int) -> list[Floor]:
    """The floors for this device and world size."""
    return [f for f in floors if f.device == device and world_size in f.world_sizes]


def check_floors(
    rows: Iterable[dict[str, Any]], floors: Iterable[Floor], device: str, world_size: int
) -> list[FloorViolation]:
    """Every (floor, row) pair of this device and world size where the row misses the floor."""
    rows = list(rows)
    violations = []
    for floor in applicable(floors, device, world_size):
        for row in rows:
            if not floor.matches(row):
                continue
            ratios = paired_overhead_ratios(row, rows) if floor.op == OVERHEAD else []
            if ratios:
                label = f"{device} ws{world_size} overhead {row.get('collective')} {row.get('bytes')}"
                median, low, high = ((ratio - 1) * 100 for ratio in median_interval(ratios, seed=label))
                if low > floor.value:
                    violations.append(FloorViolation(floor, row, median, (low, high), len(ratios)))
                continue
            measured = measured_value(floor, row)
            missed = measured < floor.value if BOUNDS[floor.bound] == "min" else measured > floor.value
            if missed:
                violations.append(FloorViolation(floor, row, measured))
    return violations


def paired_overhead_ratios(row: dict[str, Any], rows: list[dict[str, Any]]) -> list[float]:
    """Each repeat's communicator time over raw torch.distributed's in the same repeat, for an overhead row.

    The times are the `repeats_us` of the overhead row's twins in `rows`: the collective's communicator row
    and its torch.distributed baseline (`baseline: true`) at the same size and dtype. [] where either twin is
    not found once, kept no repeats, or kept ones that cannot be paired (other counts, a time of 0, too many
    to resample): the caller falls back to the best repeats.
    """

    def twin(baseline: bool) -> dict[str, Any] | None:
        found = [
            other
            for other in rows
            if other.get("op") == row.get("collective")
            and bool(other.get("baseline")) == baseline
            and other.get("bytes") == row.get("bytes")
            and other.get("dtype") == row.get("dtype")
        ]
        return found[0] if len(found) == 1 else None

    communicator, torch = twin(False), twin(True)
    if communicator is None or torch is None:
        return []
    mine, theirs = communicator.get("repeats_us"), torch.get("repeats_us")
    if (
        not isinstance(mine, list)
        or not isinstance(theirs, list)
        or not 0 < len(mine) == len(theirs) <= MAX_VALUES
    ):
        return []
    times = [*mine, *theirs]
    if not all(
        isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) and t > 0 for t in times
    ):
        return []
    return [a / b for a, b in zip(mine, theirs, strict=True)]


def unchecked_floors(
    rows: Iterable[dict[str, Any]], floors: Iterable[Floor], device: str, world_size: int
) -> list[Floor]:
    """The floors of this device and world size that no row was measured for (e.g. sizes below min_bytes)."""
    rows = list(rows)
    return [f for f in applicable(floors, device, world_size) if not any(f.matches(row) for row in rows)]


def load_floors(path: str | Path) -> list[Floor]:
    """Read and validate a floors file; a ConfigurationError lists every problem as file:line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigurationError(f"{path}: cannot read the floors file: {error.strerror}") from None
    data, root = parse_yaml_with_nodes(text, path)
    problems: list[str] = []

    def problem(key_path: list[str | int], message: str, key: bool = False) -> None:
        problems.append(f"{path}:{line_of(root, key_path, key=key)}: {format_key_path(key_path)}: {message}")

    floors: list[Floor] = []
    if not isinstance(data, dict) or data.get("version") != 1 or not isinstance(data.get("floors"), list):
        problem([], "a floors file is a mapping with `version: 1` and a list `floors:`")
    else:
        for index, entry in enumerate(data["floors"]):
            source = f"{path}:{line_of(root, ['floors', index])}"
            floor = _parse_entry(entry, ["floors", index], problem, source)
            if floor is not None:
                floors.append(floor)
    if problems:
        raise ConfigurationError(
            f"{path}: {len(problems)} problem(s) in the floors file:\n  "
            + "\n  ".join(problems)
            + "\nFix them (the format is in harness/bench/floors.py) and run again."
        )
    return floors


def _parse_entry(entry: Any, at: list[str | int], problem: Callable[..., None], source: str) -> Floor | None:
    if not isinstance(entry, dict):
        problem(at, f"expected a mapping with device, world_size, op and one bound, got {entry!r}")
        return None
    ok = True
    for name in entry:
        if name not in _KEYS:
            close = difflib.get_close_matches(str(name), _KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problem([*at, name], f"unknown key {name!r}{hint}; allowed: {', '.join(_KEYS)}", key=True)
            ok = False
    device = entry.get("device")
    if device not in DEVICES:
        problem([*at, "device"], f"device {device!r}: choose one of {', '.join(DEVICES)}")
        ok = False
    sizes = entry.get("world_size")
    world_sizes = tuple(sizes) if isinstance(sizes, list) else (sizes,)
    if not world_sizes or not all(_is_count(n) and n >= 1 for n in world_sizes):
        problem([*at, "world_size"], f"world_size {sizes!r}: a positive integer or a list of them")
        ok = False
    op = entry.get("op")
    if op not in _BOUNDS_OF_OP:
        problem([*at, "op"], f"op {op!r}: choose one of {', '.join(_BOUNDS_OF_OP)}")
        return None
    bounds = [name for name in BOUNDS if name in entry]
    if len(bounds) != 1 or bounds[0] not in _BOUNDS_OF_OP[op]:
        allowed = " or ".join(_BOUNDS_OF_OP[op])
        problem(at, f"op {op} takes exactly one bound, {allowed}; found {bounds or 'none'}")
        return None
    value = entry[bounds[0]]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        problem([*at, bounds[0]], f"{value!r}: a non-negative number")
        ok = False
    collective = entry.get("collective")
    if (op == OVERHEAD) != (collective is not None) or collective not in (None, *COLLECTIVES):
        problem(
            [*at, "collective"] if "collective" in entry else at,
            f"op overhead needs `collective:` (one of {', '.join(COLLECTIVES)}); other ops take none",
        )
        ok = False
    min_bytes = 0
    if "min_bytes" in entry:
        try:
            min_bytes = parse_size(str(entry["min_bytes"]))
        except ConfigurationError:
            problem([*at, "min_bytes"], f"{entry['min_bytes']!r}: a size such as 1M or 256M")
            ok = False
    min_tokens = entry.get("min_tokens", 0)
    if not _is_count(min_tokens) or min_tokens < 0:
        problem([*at, "min_tokens"], f"{min_tokens!r}: a non-negative integer")
        ok = False
    if not ok:
        return None
    return Floor(
        device=device,
        world_sizes=world_sizes,
        op=op,
        bound=bounds[0],
        value=float(value),
        min_bytes=min_bytes,
        min_tokens=min_tokens,
        collective=collective,
        dtype=entry.get("dtype"),
        shares=entry.get("shares"),
        source=source,
    )


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
