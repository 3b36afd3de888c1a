"""Release qualification's bandwidth half: bench each runnable device and world size, judge it against floors.

`harness qualify` runs the required cells (through `harness run --strict`) and, with --bench, the bench
(through `harness bench`'s own code) once per device and world size it could run, writing each bench's
JSON document beside the cells' results as `bench-<device>-ws<N>.json`. A bench that could not finish
leaves a document with an "error" instead of rows, so the record says why a figure is missing.
`harness report` finds these documents in any results directory and judges them against the floors.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.bench.floors import Floor, FloorViolation, check_floors, unchecked_floors
from harness.bench.options import DISPATCH_COMBINE, format_size
from harness.bench.results import incorrect_rows, is_collective, write_document
from harness.common.errors import ConfigurationError, HarnessError
from harness.results.files import UnsafeResultFile, read_json
from harness.common.untrusted_text import markdown_text

# Bench documents are found by content, not name; files this large are results of something else.
MAX_BENCH_DOCUMENT_BYTES = 64 << 20


def bench_document_name(device: str, world_size: int) -> str:
    """The file `harness qualify` writes one bench's document to."""
    return f"bench-{device}-ws{world_size}.json"


@dataclass
class BenchOutcome:
    """One bench document, judged: its figures, wrong results, floors missed and floors it could not check."""

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


def read_bench_document(path: Path) -> dict[str, Any] | None:
    """The bench document in `path`, or None when the file is some other JSON (or not JSON, or a link:
    documents found in downloaded artifacts are read as any results file, bounded and never through links).

    ConfigurationError when it is a bench document whose settings are not what `harness bench` writes.
    """
    try:
        data = read_json(path, MAX_BENCH_DOCUMENT_BYTES)
    except (OSError, ValueError, UnsafeResultFile):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
        return None
    settings = data.get("settings")
    if not isinstance(settings, dict) or "device" not in settings or "world_size" not in settings:
        return None
    world_size = settings["world_size"]
    if (
        not isinstance(settings["device"], str)
        or not isinstance(world_size, int)
        or isinstance(world_size, bool)
    ):
        raise ConfigurationError(
            f"{path}: settings.device must be a string and settings.world_size an integer "
            f"(got {settings['device']!r:.40} and {world_size!r:.40}); not a document `harness bench` wrote"
        )
    return data


def find_bench_documents(directory: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every bench document under `directory`, in path order."""
    found = []
    for path in sorted(_json_files(directory)):
        document = read_bench_document(path)
        if document is not None:
            found.append((path, document))
    return found


def _json_files(directory: Path) -> Iterator[Path]:
    """The *.json files below `directory`, never through a link, walked without recursion (a downloaded
    artifact may nest thousands of directories)."""
    stack = [directory]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
                    elif entry.name.endswith(".json") and entry.is_file(follow_symlinks=False):
                        yield Path(entry.path)
        except OSError:
            continue


def judge_bench(path: Path, document: dict[str, Any], floors: Iterable[Floor]) -> BenchOutcome:
    """A bench document's outcome against `floors`."""
    floors = list(floors)
    settings = document["settings"]
    device, world_size = str(settings["device"]), int(settings["world_size"])
    rows = [row for row in document["rows"] if isinstance(row, dict)]
    return BenchOutcome(
        path=path,
        device=device,
        world_size=world_size,
        rows=rows,
        error=str(document.get("error") or ""),
        environment=document.get("environment") if isinstance(document.get("environment"), dict) else {},
        incorrect=incorrect_rows(rows),
        violations=check_floors(rows, floors, device, world_size),
        unchecked=unchecked_floors(rows, floors, device, world_size) if rows else [],
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


def run_bench_for_qualification(
    device: str, world_size: int, out_dir: Path, *, quick: bool, fingerprint: dict[str, Any]
) -> Path:
    """Run the bench for one device and world size into out_dir; a failure leaves an error document."""
    from harness.bench.command import bench
    from harness.bench.options import build_options

    path = out_dir / bench_document_name(device, world_size)
    path.unlink(missing_ok=True)
    try:
        bench(build_options(device=device, world_size=world_size, quick=quick), json_path=path)
    except HarnessError as error:
        settings = {"device": device, "world_size": world_size, "quick": quick}
        write_document(
            path, {"rows": [], "environment": fingerprint, "settings": settings, "error": str(error)}
        )
    return path
