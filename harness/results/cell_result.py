"""What became of a cell and of a run, typed from the executor to every renderer and the merge.

An executor returns a `CellResult`; `RunReport` (summary.py) keeps them in a `RunSummary`, written as
summary.json; `harness report` reads summaries and cells' result.json back into the same types. Those files
may come from untrusted runs: `from_json` is their one validation, and a value of the wrong type is a
`ResultFormatError` naming its key in JSON's words (`cells[0].world_size is a string ('2'), not an
integer`), never a traceback later in a renderer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args

if TYPE_CHECKING:
    from harness.config.model import Cell

# incomplete: the cell's directory has no completion record (its run was killed); an error, never a pass.
CellStatus = Literal["passed", "failed", "skipped", "error", "incomplete"]
CELL_STATUSES: tuple[str, ...] = get_args(CellStatus)
# A required cell in one of these did not run to a verdict: `--strict` fails the run.
NOT_RUN_STATUSES = ("skipped", "error", "incomplete")
# A cell in one of these fails the run (exit 1).
FAILING_STATUSES = ("failed", "error", "incomplete")
FORMAT_VERSION = 1
# The order of a report's device rows (grids, merged cells, bench outcomes): these, then any other.
DEVICE_ORDER = ("cpu", "cuda", "xpu")
# Distinct skip reasons a cell keeps (the rest are counted under SKIP_REASONS_OTHER), and their length.
SKIP_REASONS_KEPT = 20
SKIP_REASON_CHARS = 240
SKIP_REASONS_OTHER = "(other reasons)"


def device_rank(device: str) -> int:
    """Where a device's row goes: cpu, cuda, xpu, then any other."""
    return DEVICE_ORDER.index(device) if device in DEVICE_ORDER else len(DEVICE_ORDER)


class ResultFormatError(ValueError):
    """A results file holds a value the harness never writes there; the message names its key."""


@dataclass
class TestCounts:
    # Not a test class, whatever its name says to pytest's collection in the modules that import it.
    __test__ = False

    passed: int = 0
    failed: int = 0
    skipped: int = 0
    errors: int = 0
    # Of the passed: those that failed an attempt first (or some of their repeats), a warning not a failure.
    flaky: int = 0
    # Failed or errored, and quarantined: counted here, not in failed/errors, so the cell can still pass.
    quarantined: int = 0
    # Collected but never finished: the cell was stopped (timeout, Ctrl-C) or died before them.
    not_run: int = 0
    # Strict xfails of a recorded known gap that holds (not in `skipped`, where JUnit counts them).
    known_gaps: int = 0

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.skipped + self.errors + self.quarantined + self.known_gaps

    @classmethod
    def from_json(cls, data: Any, where: str = "counts") -> TestCounts:
        data = _object(data, where)
        # The first four are in every summary; the others are absent from older ones.
        for key in ("passed", "failed", "skipped", "errors"):
            _need(data, key, where)
        return cls(
            **{f.name: _typed(data, f.name, int, where) for f in dataclasses.fields(cls) if f.name in data}
        )


@dataclass(frozen=True)
class QuarantineFailure:
    """A quarantined test's failure: its node id and the first line of what it said."""

    test: str
    summary: str


@dataclass
class QuarantineRecord:
    """What became of one `quarantine:` entry's tests in one cell (entries naming none of them left out)."""

    test: str
    reason: str
    issue: str
    source: str = ""
    ran: int = 0
    # Failed or errored, or passed only after failed attempts.
    failed: int = 0
    # The first failures' texts (harness/results/quarantine.py FAILURES_KEPT); the rest are counted only.
    failures: list[QuarantineFailure] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: Any, where: str) -> QuarantineRecord:
        data = _object(data, where)
        values: dict[str, Any] = {}
        for key in ("test", "reason", "issue"):
            _need(data, key, where)
        for f in dataclasses.fields(cls):
            if f.name in data and f.name != "failures":
                values[f.name] = _typed(data, f.name, int if f.name in ("ran", "failed") else str, where)
        failures = _typed(data, "failures", list, where) if "failures" in data else []
        values["failures"] = []
        for index, failure in enumerate(failures):
            at = f"{where}.failures[{index}]"
            failure = _object(failure, at)
            _need(failure, "test", at)
            _need(failure, "summary", at)
            values["failures"].append(
                QuarantineFailure(_typed(failure, "test", str, at), _typed(failure, "summary", str, at))
            )
        return cls(**values)


@dataclass
class CellResult:
    """What became of one cell; result.json holds one, summary.json one per cell."""

    id: str
    device: str
    world_size: int
    status: CellStatus
    reason: str = ""
    executor: str = ""
    counts: TestCounts = field(default_factory=TestCounts)
    duration_s: float = 0.0
    # The cell's directory: relative to the run directory in summary.json, absolute in merged reports.
    results_dir: str = ""
    fingerprint: dict[str, Any] = field(default_factory=dict)
    required: bool = False
    backend: str = ""
    params: dict[str, str] = field(default_factory=dict)
    # Where the cell was declared ("matrix.yaml:12").
    source: str = ""
    nodes: int = 1
    # Per quarantine entry that named a test of the cell.
    quarantine: list[QuarantineRecord] = field(default_factory=list)
    # Distinct reasons of the cell's skipped tests, with how many tests gave each (SKIP_REASONS_KEPT kept).
    skip_reasons: dict[str, int] = field(default_factory=dict)
    # A merged report's: a cell of the matrix found in none of the inputs (its status is "error").
    missing: bool = False

    @classmethod
    def of_cell(cls, cell: Cell, status: CellStatus, reason: str = "", **fields: Any) -> CellResult:
        """The result of `cell`, with the identity fields taken from it (duration rounded to ms)."""
        if "duration_s" in fields:
            fields["duration_s"] = round(fields["duration_s"], 3)
        return cls(
            id=cell.id,
            device=cell.device,
            world_size=cell.world_size,
            status=status,
            reason=reason,
            required=cell.required,
            backend=cell.backend,
            params=dict(cell.params),
            source=cell.source,
            nodes=cell.nodes,
            **fields,
        )

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any, where: str = "") -> CellResult:
        """The result `to_json` wrote; ResultFormatError naming the key (after `where`) when it is not one."""
        data = _object(data, where)
        for key in ("id", "device", "world_size", "status", "reason", "counts", "duration_s", "required"):
            _need(data, key, where)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name in data and f.name in _CELL_KINDS:
                values[f.name] = _typed(data, f.name, _CELL_KINDS[f.name], where)
        if values["status"] not in CELL_STATUSES:
            raise ResultFormatError(
                f"{_at(where, 'status')} is {clip_repr(values['status'])}, "
                f"not one of {', '.join(CELL_STATUSES)}"
            )
        values["counts"] = TestCounts.from_json(data["counts"], _at(where, "counts"))
        for key, value in values.get("params", {}).items():
            _check(value, str, _at(where, f"params.{key}"))
        for reason, count in values.get("skip_reasons", {}).items():
            _check(count, int, _at(where, f"skip_reasons[{clip_repr(reason)}]"))
        gpus = values.get("fingerprint", {}).get("nvidia_gpus")
        if gpus is not None and not (isinstance(gpus, list) and all(isinstance(gpu, dict) for gpu in gpus)):
            raise ResultFormatError(f"{_at(where, 'fingerprint.nvidia_gpus')} is not an array of objects")
        records = values.get("quarantine", [])
        values["quarantine"] = [
            QuarantineRecord.from_json(record, _at(where, f"quarantine[{index}]"))
            for index, record in enumerate(records)
        ]
        return cls(**values)


_CELL_KINDS: dict[str, type | tuple[type, ...]] = {
    "id": str,
    "device": str,
    "world_size": int,
    "status": str,
    "reason": str,
    "executor": str,
    "counts": dict,
    "duration_s": (int, float),
    "results_dir": str,
    "fingerprint": dict,
    "required": bool,
    "backend": str,
    "params": dict,
    "source": str,
    "nodes": int,
    "quarantine": list,
    "skip_reasons": dict,
    "missing": bool,
}


@dataclass
class RunSummary:
    """summary.json: a run's (or a merged report's) cells in the matrix's order, and when and how it ran."""

    matrix: str = ""
    started: str | None = None
    finished: str | None = None
    # None while the run goes on.
    exit_code: int | None = None
    strict: bool = False
    host: dict[str, Any] = field(default_factory=dict)
    cells: list[CellResult] = field(default_factory=list)
    # Cells of the run not finished (yet).
    pending: list[str] = field(default_factory=list)
    format: int = FORMAT_VERSION
    # A merged report's inputs (None: one run's own summary) and what the merge noted.
    merged_from: list[str] | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if self.merged_from is None:
            del data["merged_from"]
        return data

    @classmethod
    def from_json(cls, data: Any) -> RunSummary:
        """The summary `to_json` wrote; ResultFormatError naming the key when it is not one."""
        data = _object(data, "")
        if not isinstance(data.get("cells"), list):
            raise ResultFormatError("not a harness summary (no `cells` list)")
        values: dict[str, Any] = {}
        for key, kind in _SUMMARY_KINDS.items():
            if key in data:
                values[key] = _typed(data, key, kind, "")
        for name in ("pending", "merged_from", "notes"):
            for index, text in enumerate(values.get(name) or []):
                _check(text, str, f"{name}[{index}]")
        values["cells"] = [
            CellResult.from_json(cell, f"cells[{index}]") for index, cell in enumerate(data["cells"])
        ]
        return cls(**values)


_SUMMARY_KINDS: dict[str, type | tuple[type, ...]] = {
    "matrix": str,
    "started": (str, type(None)),
    "finished": (str, type(None)),
    "exit_code": (int, type(None)),
    "strict": bool,
    "host": dict,
    "pending": list,
    "format": int,
    "merged_from": (list, type(None)),
    "notes": list,
}
_JSON_TYPES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    dict: "an object",
    list: "an array",
    type(None): "null",
}


def _at(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _object(data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ResultFormatError(f"{where or 'the document'} is {_json_type(data)}, not an object")
    return data


def _need(data: dict[str, Any], key: str, where: str) -> None:
    if key not in data:
        raise ResultFormatError(f"{where or 'the document'} has no `{key}`")


def _typed(data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    return _check(data[key], kind, _at(where, key))


def _check(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    """`value` when it is of `kind`; else ResultFormatError: '`where` is a string ('2'), not an integer'."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # JSON's true and false are Python ints too; they are never a count or a size.
    if isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds):
        return value
    shown = f" ({clip_repr(value)})" if isinstance(value, (str, int, float)) else ""
    raise ResultFormatError(
        f"{where} is {_json_type(value)}{shown}, not {' or '.join(_JSON_TYPES[k] for k in kinds)}"
    )


def _json_type(value: Any) -> str:
    return next((name for kind, name in _JSON_TYPES.items() if type(value) is kind), type(value).__name__)


def clip_repr(value: Any, limit: int = 80) -> str:
    """repr(value), cut to `limit` characters: a hostile file's value named in a message stays short."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + " …"
