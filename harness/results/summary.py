"""A run's own records: summary.json and the merged junit.xml, kept up to date as cells finish.

summary.json is written by `RunReport` and read by `load_summary` only, so `harness report` merges results
from several machines with the same code. After each finished cell summary.json (and, through the renderer
the run hands in, summary.md) is replaced atomically and the cell's suite is appended to junit.xml: a run
killed half-way leaves the cells it finished, and lists the rest as pending. Each cell's junit.xml is read
once, when it finishes (its failures are kept for summary.md), so the records cost time linear in the
number of cells.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.common.errors import ConfigurationError
from harness.results.cell_result import CellResult, ResultFormatError, RunSummary
from harness.results.files import (
    JUNIT_XML,
    SUMMARY_JSON,
    SUMMARY_MD,
    UnsafeResultFile,
    read_json,
    write_new,
)
from harness.results.junit import CellFailures, MergedJunitFile
from harness.results.quarantine import quarantine_outcome
from harness.results.report import ResultsReport, compute_exit_code, now_iso, report_of_summary

# Renders a report as summary.md (harness/presentation/markdown.py's render_markdown).
MarkdownRenderer = Callable[[ResultsReport], str]


class RunReport:
    """The results of one `harness run`, rewritten to disk as each cell finishes."""

    def __init__(
        self,
        out_dir: Path,
        cell_ids: list[str],
        host: dict[str, Any],
        *,
        strict: bool,
        matrix: str,
        markdown: MarkdownRenderer,
    ) -> None:
        self.out_dir = out_dir
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._order = list(cell_ids)
        self._cells: dict[str, CellResult] = {}
        self._markdown = markdown
        self.summary = RunSummary(
            matrix=matrix, started=now_iso(), strict=strict, host=host, pending=list(self._order)
        )
        self._failures: dict[str, CellFailures] = {}
        self._junit = MergedJunitFile(out_dir / JUNIT_XML)

    def add(self, result: CellResult) -> None:
        """Record a finished (or skipped) cell and rewrite the files."""
        if result.results_dir:
            result = dataclasses.replace(
                result, results_dir=os.path.relpath(result.results_dir, self.out_dir)
            )
        if result.id in self._cells:  # never twice, but if so the merged junit.xml must not list it twice
            self._cells.pop(result.id)
            self._rewrite_junit()
        self._cells[result.id] = result
        self._read_cell_junit(result)
        self._refresh()

    def finish(self, *, interrupted: bool) -> int:
        """Write the final files; returns the run's exit code."""
        exit_code = compute_exit_code(
            self._cells.values(), strict=self.summary.strict, interrupted=interrupted
        )
        self.summary.finished = now_iso()
        self.summary.exit_code = exit_code
        self._refresh()
        self._junit.finish(self._order)
        return exit_code

    def results_report(self) -> ResultsReport:
        """The report of the cells so far, from the failures read as each finished (nothing re-read)."""
        return report_of_summary(self.summary, self.out_dir, self._failures)

    @property
    def cells(self) -> list[CellResult]:
        return self.summary.cells

    def _refresh(self) -> None:
        self.summary.cells = [self._cells[i] for i in self._order if i in self._cells]
        self.summary.pending = [i for i in self._order if i not in self._cells]
        document = {**self.summary.to_json(), "quarantine": quarantine_outcome(self.summary.cells).to_json()}
        write_new(self.out_dir / SUMMARY_JSON, (json.dumps(document, indent=2) + "\n").encode("utf-8"))
        write_new(self.out_dir / SUMMARY_MD, self._markdown(self.results_report()).encode("utf-8"))

    def _read_cell_junit(self, cell: CellResult) -> None:
        """One read of the cell's junit.xml: its suite appended to the merged one, its failures kept."""
        self._failures[cell.id] = self._junit.append(cell, self.out_dir)

    def _rewrite_junit(self) -> None:
        self._junit.close()
        self._junit = MergedJunitFile(self.out_dir / JUNIT_XML)
        for cell in self._cells.values():
            self._read_cell_junit(cell)


def load_summary(path: Path) -> RunSummary:
    """Read a summary.json, or the one in a results directory; ConfigurationError if it is not one."""
    path = path / SUMMARY_JSON if path.is_dir() else path
    try:
        document = read_json(path)
    except FileNotFoundError:
        raise ConfigurationError(
            f"{path}: no summary.json there; pass a `harness run --out` directory."
        ) from None
    except (OSError, ValueError, UnsafeResultFile) as error:
        raise ConfigurationError(f"{path}: not a readable summary.json ({error}).") from None
    try:
        return RunSummary.from_json(document)
    except ResultFormatError as error:
        raise ConfigurationError(
            f"{path}: {error}; the file was not written by `harness run` "
            "or was edited: rerun the cells, or remove the entry"
        ) from None
