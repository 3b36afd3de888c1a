"""A run's own records: summary.json, summary.md and the merged junit.xml, rewritten after every cell.

summary.json is written by `RunReport` and read by `load_summary` only, so `harness report` merges results
from several machines with the same code. Every file is replaced atomically after each finished cell: a
run killed half-way leaves the cells it finished, and lists the rest as pending.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from harness.errors import ConfigurationError
from harness.model import CellResult
from harness.plan import PlannedCell
from harness.results_dir.files import (
    JUNIT_XML,
    SUMMARY_JSON,
    SUMMARY_MD,
    UnsafeResultFile,
    read_json,
    write_new,
)
from harness.results_dir.junit import merged_junit, write_junit
from harness.results_dir.render import STATUS_MARK, render_markdown
from harness.results_dir.report import FORMAT_VERSION, compute_exit_code, now_iso, report_of_summary


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

    def add(self, result: CellResult) -> None:
        """Record a finished (or skipped) cell and rewrite the files."""
        data = result.to_json()
        if data["results_dir"]:
            data["results_dir"] = os.path.relpath(data["results_dir"], self.out_dir)
        self._cells[result.id] = data
        self._refresh()

    def finish(self, *, interrupted: bool) -> int:
        """Write the final files; returns the run's exit code."""
        exit_code = compute_exit_code(
            self._cells.values(), strict=self.summary["strict"], interrupted=interrupted
        )
        self.summary["finished"] = now_iso()
        self.summary["exit_code"] = exit_code
        self._refresh()
        return exit_code

    @property
    def cells(self) -> list[dict[str, Any]]:
        return self.summary["cells"]

    def _refresh(self) -> None:
        self.summary["cells"] = [self._cells[i] for i in self._order if i in self._cells]
        self.summary["pending"] = [i for i in self._order if i not in self._cells]
        write_summary(self.out_dir, self.summary)


def write_summary(out_dir: Path, summary: dict[str, Any]) -> None:
    """Write summary.json, summary.md and the merged junit.xml for `summary` into `out_dir`."""
    write_new(out_dir / SUMMARY_JSON, (json.dumps(summary, indent=2) + "\n").encode("utf-8"))
    report = report_of_summary(summary, out_dir)
    write_new(out_dir / SUMMARY_MD, render_markdown(report).encode("utf-8"))
    write_junit(merged_junit(summary["cells"], out_dir), out_dir / JUNIT_XML)


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
    for index, cell in enumerate(summary["cells"]):
        problem = summary_cell_problem(cell)
        if problem:
            raise ConfigurationError(
                f"{path}: cells[{index}] {problem}; the file was not written by `harness run` "
                "or was edited: rerun the cells, or remove the entry"
            )
    return summary


# The keys and types of a summary's cell entry that reports rely on.
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


def summary_cell_problem(cell: Any) -> str:
    """What is wrong with a summary's cell entry, or '' when it is one `harness run` writes."""
    if not isinstance(cell, dict):
        return f"is a {type(cell).__name__}, not an object"
    for key, kind in SUMMARY_CELL_KEYS.items():
        if not isinstance(cell.get(key), kind):
            return f"has no valid `{key}`"
    if cell["status"] not in STATUS_MARK:
        return f"has an unknown status {cell['status']!r}"
    counts = cell["counts"]
    if not all(isinstance(counts.get(k), int) for k in ("passed", "failed", "skipped", "errors")):
        return "has invalid `counts`"
    return ""
