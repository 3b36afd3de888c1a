"""The bench verdict, in one place: bench rows or a bench document judged against the floors.

`harness bench` judges the rows it has just measured (`judge_rows`); `harness report`, `harness qualify` and
`harness compare` judge the documents found in results directories (`judge_bench`; finding and reading them,
bounded and never through links, is the results layer's: harness/results/bench_documents.py). Either way
the verdict is a `BenchOutcome`: wrong results, floors missed, floors no row was measured for, and a bench
that could not finish. Rendering it is presentation's (harness/presentation/bench_markdown.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.bench.floors import Floor, FloorViolation, check_floors, unchecked_floors
from harness.bench.options import DISPATCH_COMBINE
from harness.bench.results import incorrect_rows, is_collective
from harness.common.errors import ConfigurationError


@dataclass
class BenchOutcome:
    """One bench, judged: its figures, wrong results, floors missed and floors no row was measured for."""

    path: Path
    device: str
    world_size: int
    rows: list[dict[str, Any]]
    error: str = ""
    environment: dict[str, Any] = field(default_factory=dict)
    incorrect: list[str] = field(default_factory=list)
    violations: list[FloorViolation] = field(default_factory=list)
    unchecked: list[Floor] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """The bench did not finish, a result was wrong, or a floor was missed."""
        return bool(self.error or self.incorrect or self.violations)

    def figures(self) -> list[dict[str, Any]]:
        """Per collective, its largest message's busbw and the peak; per backend, dispatch+combine speedup."""
        figures = []
        by_op: dict[str, list[dict[str, Any]]] = {}
        for row in self.rows:
            if is_collective(row) and row.get("impl") == "communicator":
                by_op.setdefault(row["op"], []).append(row)
        for op, rows in by_op.items():
            largest = max(rows, key=lambda row: row["bytes"])
            figures.append(
                {
                    "op": op,
                    "bytes": largest["bytes"],
                    "busbw_gbps": largest["busbw_gbps"],
                    "peak_busbw_gbps": max(row["busbw_gbps"] for row in rows),
                }
            )
        for row in self.rows:
            if row.get("op") == DISPATCH_COMBINE and "speedup_vs_naive" in row:
                figures.append(
                    {
                        "op": DISPATCH_COMBINE,
                        "tokens": row["tokens"],
                        "speedup_vs_naive": row["speedup_vs_naive"],
                    }
                )
            elif row.get("op") == DISPATCH_COMBINE and "uneven_over_equal" in row:
                figures.append(
                    {
                        "op": DISPATCH_COMBINE,
                        "tokens": row["tokens"],
                        "uneven_over_equal": row["uneven_over_equal"],
                    }
                )
        return figures

    def to_json(self) -> dict[str, Any]:
        return {
            "document": str(self.path),
            "device": self.device,
            "world_size": self.world_size,
            "error": self.error,
            "failed": self.failed,
            "figures": self.figures(),
            "incorrect": self.incorrect,
            "floors_missed": [violation.message() for violation in self.violations],
            "floors_unchecked": [f"{floor.describe()} ({floor.source})" for floor in self.unchecked],
            "torch": self.environment.get("torch"),
            "nccl": self.environment.get("nccl"),
            "hostname": self.environment.get("hostname"),
        }


def is_bench_document(data: Any, where: Path) -> bool:
    """Whether `data`, the JSON read from `where`, is a bench document (other JSON lives in results too).

    ConfigurationError when it is one whose settings are not what `harness bench` writes.
    """
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        return False
    settings = data.get("settings")
    if not isinstance(settings, dict) or "device" not in settings or "world_size" not in settings:
        return False
    world_size = settings["world_size"]
    if (
        not isinstance(settings["device"], str)
        or not isinstance(world_size, int)
        or isinstance(world_size, bool)
    ):
        raise ConfigurationError(
            f"{where}: settings.device must be a string and settings.world_size an integer "
            f"(got {settings['device']!r:.40} and {world_size!r:.40}); not a document `harness bench` wrote"
        )
    return True


def judge_rows(
    rows: list[dict[str, Any]],
    floors: Iterable[Floor],
    *,
    path: Path,
    device: str,
    world_size: int,
    error: str = "",
    environment: dict[str, Any] | None = None,
) -> BenchOutcome:
    """The verdict on one bench's `rows` (its document at `path`) against the floors of its device and world
    size. A bench without rows measured nothing: its floors are not measured rather than unchecked."""
    floors = list(floors)
    return BenchOutcome(
        path=path,
        device=device,
        world_size=world_size,
        rows=rows,
        error=error,
        environment=environment or {},
        incorrect=incorrect_rows(rows),
        violations=check_floors(rows, floors, device, world_size),
        unchecked=unchecked_floors(rows, floors, device, world_size) if rows else [],
    )


def judge_bench(path: Path, document: dict[str, Any], floors: Iterable[Floor]) -> BenchOutcome:
    """The verdict on a bench document (one `is_bench_document` accepted) against `floors`."""
    settings = document["settings"]
    environment = document.get("environment")
    return judge_rows(
        [row for row in document["rows"] if isinstance(row, dict)],
        floors,
        path=path,
        device=str(settings["device"]),
        world_size=int(settings["world_size"]),
        error=str(document.get("error") or ""),
        environment=environment if isinstance(environment, dict) else None,
    )


def unmeasured_floors(
    floors: Iterable[Floor],
    outcomes: Iterable[BenchOutcome],
    scope: set[tuple[str, int]] | None = None,
) -> list[tuple[Floor, int]]:
    """(floor, world size) pairs that no bench document measured at all, within `scope` where given."""
    measured = {(outcome.device, outcome.world_size) for outcome in outcomes}
    pairs = [(floor, (floor.device, world_size)) for floor in floors for world_size in floor.world_sizes]
    return [
        (floor, where[1])
        for floor, where in pairs
        if where not in measured and (scope is None or where in scope)
    ]
