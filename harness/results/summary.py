"""A run's own records: summary.json, summary.md and the merged junit.xml, kept up to date as cells finish.

summary.json is written by `RunReport` and read by `load_summary` only, so `harness report` merges results
from several machines with the same code. After each finished cell summary.json and summary.md are replaced
atomically and the cell's suite is appended to junit.xml: a run killed half-way leaves the cells it
finished, and lists the rest as pending. Each cell's junit.xml is read once, when it finishes (its failures
are kept for summary.md), so the records cost time linear in the number of cells.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.common.errors import ConfigurationError
from harness.config.model import CellResult
from harness.planning.plan import PlannedCell
from harness.config.quarantine import quarantine_outcome
from harness.results.files import (
    JUNIT_XML,
    SUMMARY_JSON,
    SUMMARY_MD,
    UnsafeResultFile,
    read_json,
    write_new,
)
from harness.results.junit import CellFailures, MergedJunitFile, clip
from harness.presentation.markdown import STATUS_MARK, render_markdown
from harness.results.report import (
    FORMAT_VERSION,
    ResultsReport,
    compute_exit_code,
    now_iso,
    report_of_summary,
)


def skipped_result(planned: PlannedCell) -> CellResult:
    """The result of a cell that cannot run here."""
    return CellResult.of_cell(planned.cell, "skipped", planned.reason)


class RunReport:
    """The results of one `harness run`, rewritten to disk as each cell finishes."""

    def __init__(
        self, out_dir: Path, planned: list[PlannedCell], host: dict[str, Any], *, strict: bool, matrix: str
    ) -> None:
        self.out_dir = out_dir
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._order = [p.cell.id for p in planned]
        self._cells: dict[str, dict[str, Any]] = {}
        self.summary: dict[str, Any] = {
            "format": FORMAT_VERSION,
            "matrix": matrix,
            "started": now_iso(),
            "finished": None,
            "exit_code": None,
            "strict": strict,
            "host": host,
            "cells": [],
            "pending": list(self._order),
        }
        self._failures: dict[str, CellFailures] = {}
        self._junit = MergedJunitFile(out_dir / JUNIT_XML)

    def add(self, result: CellResult) -> None:
        """Record a finished (or skipped) cell and rewrite the files."""
        data = result.to_json()
        if data["results_dir"]:
            data["results_dir"] = os.path.relpath(data["results_dir"], self.out_dir)
        if result.id in self._cells:  # never twice, but if so the merged junit.xml must not list it twice
            self._cells.pop(result.id)
            self._rewrite_junit()
        self._cells[result.id] = data
        self._read_cell_junit(data)
        self._refresh()

    def finish(self, *, interrupted: bool) -> int:
        """Write the final files; returns the run's exit code."""
        exit_code = compute_exit_code(
            self._cells.values(), strict=self.summary["strict"], interrupted=interrupted
        )
        self.summary["finished"] = now_iso()
        self.summary["exit_code"] = exit_code
        self._refresh()
        self._junit.finish(self._order)
        return exit_code

    def results_report(self) -> ResultsReport:
        """The report of the cells so far, from the failures read as each finished (nothing re-read)."""
        return report_of_summary(self.summary, self.out_dir, self._failures)

    @property
    def cells(self) -> list[dict[str, Any]]:
        return self.summary["cells"]

    def _refresh(self) -> None:
        self.summary["cells"] = [self._cells[i] for i in self._order if i in self._cells]
        self.summary["pending"] = [i for i in self._order if i not in self._cells]
        self.summary["quarantine"] = quarantine_outcome(self.summary["cells"]).to_json()
        write_new(self.out_dir / SUMMARY_JSON, (json.dumps(self.summary, indent=2) + "\n").encode("utf-8"))
        write_new(self.out_dir / SUMMARY_MD, render_markdown(self.results_report()).encode("utf-8"))

    def _read_cell_junit(self, cell: dict[str, Any]) -> None:
        """One read of the cell's junit.xml: its suite appended to the merged one, its failures kept."""
        self._failures[cell["id"]] = self._junit.append(cell, self.out_dir)

    def _rewrite_junit(self) -> None:
        self._junit.close()
        self._junit = MergedJunitFile(self.out_dir / JUNIT_XML)
        for cell in self._cells.values():
            self._read_cell_junit(cell)


def load_summary(path: Path) -> dict[str, Any]:
    """Read a summary.json, or the one in a results directory; ConfigurationError if it is not one."""
    path = path / SUMMARY_JSON if path.is_dir() else path
    try:
        summary = read_json(path)
    except FileNotFoundError:
        raise ConfigurationError(
            f"{path}: no summary.json there; pass a `harness run --out` directory."
        ) from None
    except (OSError, ValueError, UnsafeResultFile) as error:
        raise ConfigurationError(f"{path}: not a readable summary.json ({error}).") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("cells"), list):
        raise ConfigurationError(f"{path}: not a harness summary (no `cells` list).")
    for where, problem in summary_problems(summary):
        if problem:
            raise ConfigurationError(
                f"{path}: {where}{problem}; the file was not written by `harness run` "
                "or was edited: rerun the cells, or remove the entry"
            )
    return summary


def summary_problems(summary: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, what is wrong) of each key of a summary, in order; the first problem is the one to report."""
    for key, kind in SUMMARY_KEYS.items():
        if key in summary:
            yield key, type_problem(summary[key], kind)
    for index, cell_id in enumerate(summary.get("pending") or []):
        yield f"pending[{index}]", type_problem(cell_id, str)
    for index, cell in enumerate(summary["cells"]):
        yield f"cells[{index}]", summary_cell_problem(cell)


# The keys of a summary that reports read, and their types.
SUMMARY_KEYS: dict[str, type | tuple[type, ...]] = {
    "matrix": str,
    "started": (str, type(None)),
    "finished": (str, type(None)),
    "exit_code": (int, type(None)),
    "strict": bool,
    "pending": list,
}
# The keys and types of a summary's cell entry that reports rely on...
SUMMARY_CELL_KEYS: dict[str, type | tuple[type, ...]] = {
    "id": str,
    "device": str,
    "world_size": int,
    "status": str,
    "reason": str,
    "counts": dict,
    "duration_s": (int, float),
    "required": bool,
}
# ...and those it may have (older summaries, merged reports), with their types when present.
SUMMARY_CELL_OPTIONAL_KEYS: dict[str, type | tuple[type, ...]] = {
    "results_dir": str,
    "executor": str,
    "backend": str,
    "source": str,
    "params": dict,
    "fingerprint": dict,
    "nodes": int,
    "missing": bool,
    "quarantine": list,
}
_JSON_TYPES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    dict: "an object",
}
_JSON_TYPES.update({list: "an array", type(None): "null"})


def summary_cell_problem(cell: Any) -> str:
    """What is wrong with a summary's cell entry (' `key` is ..., not ...'), or '' when it is one
    `harness run` writes. Checked before any report uses it: a wrong type must not become a traceback."""
    if not isinstance(cell, dict):
        return f" is {_json_type(cell)}, not an object"
    for key, kind in SUMMARY_CELL_KEYS.items():
        if key not in cell:
            return f" has no `{key}`"
        if problem := type_problem(cell[key], kind):
            return f".{key}{problem}"
    for key, kind in SUMMARY_CELL_OPTIONAL_KEYS.items():
        if key in cell and (problem := type_problem(cell[key], kind)):
            return f".{key}{problem}"
    if cell["status"] not in STATUS_MARK:
        return f".status is {cell['status']!r}, not one of {', '.join(STATUS_MARK)}"
    counts = cell["counts"]
    optional = ("not_run", "flaky", "quarantined", "known_gaps")  # absent from older summaries
    for key in ("passed", "failed", "skipped", "errors", *optional):
        if (key in counts or key not in optional) and (problem := type_problem(counts.get(key), int)):
            return f".counts.{key}{problem}"
    for key, value in (cell.get("params") or {}).items():
        if problem := type_problem(value, str):
            return f".params.{key}{problem}"
    gpus = (cell.get("fingerprint") or {}).get("nvidia_gpus")
    if gpus is not None and (not isinstance(gpus, list) or not all(isinstance(gpu, dict) for gpu in gpus)):
        return ".fingerprint.nvidia_gpus is not an array of objects"
    return ""


def type_problem(value: Any, kind: type | tuple[type, ...]) -> str:
    """' is a string ('2'), not an integer' when `value` is not of `kind` (JSON's words), else ''."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    # JSON's true and false are Python ints too; they are never a count or a size.
    if isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds):
        return ""
    shown = f" ({clip(repr(value))})" if isinstance(value, (str, int, float)) else ""
    return f" is {_json_type(value)}{shown}, not {' or '.join(_JSON_TYPES[k] for k in kinds)}"


def _json_type(value: Any) -> str:
    return next((name for kind, name in _JSON_TYPES.items() if type(value) is kind), type(value).__name__)
