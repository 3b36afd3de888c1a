"""The run's results on disk — summary.json, summary.md, a merged junit.xml — and the final table.

summary.json is written and read only here (`RunReport`, `load_summary`), so `harness report` can merge
results from several machines with the same code. Every file is rewritten atomically after each finished
cell: a run killed half-way leaves the cells it finished.
"""

from __future__ import annotations

import json
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.table import Table

from harness.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_STRICT, EXIT_TEST_FAILURES, ConfigurationError
from harness.model import FAILING_STATUSES, NOT_RUN_STATUSES, CellResult
from harness.plan import PlannedCell
from harness.results.files import (
    JUNIT_XML,
    SUMMARY_JSON,
    SUMMARY_MD,
    UnsafeResultFile,
    read_json,
    read_regular,
)

FORMAT_VERSION = 1
STATUS_MARK = {"passed": "✅", "failed": "❌", "skipped": "⏭️", "error": "💥", "incomplete": "⚠️"}
STATUS_STYLE = {
    "passed": "green",
    "failed": "red",
    "skipped": "yellow",
    "error": "bold red",
    "incomplete": "bold red",
}


def now_iso() -> str:
    """The current time, UTC, ISO 8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def skipped_result(planned: PlannedCell) -> CellResult:
    """The result of a cell that cannot run here."""
    cell = planned.cell
    return CellResult.of_cell(cell, "skipped", planned.reason)


def compute_exit_code(cells: Iterable[dict[str, Any]], *, strict: bool, interrupted: bool) -> int:
    """130 interrupted; 3 --strict and a required cell not passed for want of running; 1 failures; else 0."""
    cells = list(cells)
    if interrupted:
        return EXIT_INTERRUPTED
    if strict and any(c["required"] and c["status"] in NOT_RUN_STATUSES for c in cells):
        return EXIT_STRICT
    if any(c["status"] in FAILING_STATUSES for c in cells):
        return EXIT_TEST_FAILURES
    return EXIT_OK


def _atomic_write(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(text)
    os.replace(temporary, path)


class RunReport:
    """The results of one `harness run`, rewritten to disk as each cell finishes."""

    def __init__(
        self, out_dir: Path, planned: list[PlannedCell], host: dict[str, Any], *, strict: bool, matrix: str
    ) -> None:
        self.out_dir = out_dir
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._planned = {p.cell.id: p for p in planned}
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
    _atomic_write(out_dir / SUMMARY_JSON, json.dumps(summary, indent=2) + "\n")
    _atomic_write(out_dir / SUMMARY_MD, render_markdown(summary, out_dir))
    tree = ET.ElementTree(merged_junit(summary, out_dir))
    ET.indent(tree)
    handle, temporary = tempfile.mkstemp(dir=out_dir, prefix=f".{JUNIT_XML}.")
    with os.fdopen(handle, "wb") as stream:
        tree.write(stream, encoding="utf-8", xml_declaration=True)
    os.replace(temporary, out_dir / JUNIT_XML)


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


def _cell_line(cell: dict[str, Any]) -> str:
    counts = cell["counts"]
    total = sum(counts.values())
    if cell["status"] == "skipped":
        return "skipped"
    text = f"{cell['status']} {counts['passed']}/{total - counts['skipped']}"
    if counts["skipped"]:
        text += f" (+{counts['skipped']} skipped)"
    return f"{text} · {cell['duration_s']:.1f}s"


def _grid(cells: list[dict[str, Any]]) -> tuple[list[str], list[int], dict[tuple[str, int], list[dict]]]:
    devices = list(dict.fromkeys(cell["device"] for cell in cells))
    world_sizes = sorted({cell["world_size"] for cell in cells})
    grid: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for cell in cells:
        grid.setdefault((cell["device"], cell["world_size"]), []).append(cell)
    return devices, world_sizes, grid


def _label(cell: dict[str, Any]) -> str:
    params = cell.get("params") or {}
    return f"{'-'.join(params.values())}: " if params else ""


def render_table(summary: dict[str, Any]) -> Table:
    """The device x world-size table of a summary, for the terminal."""
    devices, world_sizes, grid = _grid(summary["cells"])
    table = Table(title="comm-harness results", show_lines=True)
    table.add_column("device")
    for world_size in world_sizes:
        table.add_column(f"ws{world_size}")
    for device in devices:
        row = [device]
        for world_size in world_sizes:
            entries = grid.get((device, world_size), [])
            row.append(
                "\n".join(f"[{STATUS_STYLE[c['status']]}]{_label(c)}{_cell_line(c)}[/]" for c in entries)
                or "-"
            )
        table.add_row(*row)
    return table


def render_markdown(summary: dict[str, Any], out_dir: Path | None = None) -> str:
    """summary.md: the table, failures with their first lines, skipped and errored cells with reasons."""
    cells = summary["cells"]
    devices, world_sizes, grid = _grid(cells)
    exit_code = summary.get("exit_code")
    state = "running" if exit_code is None else f"exit code {exit_code}"
    lines = [
        "# comm-harness results",
        "",
        f"Matrix `{summary.get('matrix', '')}` · started {summary.get('started')} · "
        f"finished {summary.get('finished') or '-'} · {state}"
        + (" · strict" if summary.get("strict") else ""),
        "",
    ]
    if cells:
        lines += [
            "| device | " + " | ".join(f"ws{ws}" for ws in world_sizes) + " |",
            "|---|" + "---|" * len(world_sizes),
        ]
        for device in devices:
            row = []
            for world_size in world_sizes:
                entries = grid.get((device, world_size), [])
                row.append(
                    "<br>".join(f"{STATUS_MARK[c['status']]} {_label(c)}{_cell_line(c)}" for c in entries)
                    or "-"
                )
            lines.append(f"| {device} | " + " | ".join(row) + " |")
        lines.append("")
    if summary.get("pending"):
        lines += [f"Not finished: {', '.join(summary['pending'])}", ""]
    failures = [c for c in cells if c["status"] == "failed"]
    if failures:
        lines += ["## Failures", ""]
        for cell in failures:
            lines.append(f"### {cell['id']}")
            junit = out_dir / cell["results_dir"] / JUNIT_XML if out_dir and cell.get("results_dir") else None
            for name, message in failed_tests(junit) if junit else []:
                lines += [f"- `{name}`", "", "  ```", *[f"  {line}" for line in message], "  ```"]
            lines.append("")
    problems = [c for c in cells if c["status"] in NOT_RUN_STATUSES]
    if problems:
        lines += [
            "## Skipped and errored cells",
            "",
            "| cell | status | required | reason |",
            "|---|---|---|---|",
        ]
        for cell in problems:
            reason = cell["reason"].splitlines()[0] if cell["reason"] else ""
            lines.append(
                f"| {cell['id']} | {cell['status']} | {'yes' if cell['required'] else 'no'} "
                f"| {reason.replace('|', '/')} |"
            )
        lines.append("")
    ran = [c for c in cells if c.get("fingerprint")]
    if ran:
        lines += [
            "## Environments",
            "",
            "| cell | host | torch | CUDA | NCCL | driver | image |",
            "|---|---|---|---|---|---|---|",
        ]
        for cell in ran:
            fp = cell["fingerprint"]
            image = fp.get("image_digest") or fp.get("image") or "-"
            lines.append(
                f"| {cell['id']} | {fp.get('hostname', '-')} | {fp.get('torch') or '-'} "
                f"| {fp.get('torch_cuda') or '-'} | {fp.get('nccl') or '-'} "
                f"| {fp.get('nvidia_driver') or '-'} | {image} |"
            )
        lines.append("")
    return "\n".join(lines)


def failed_tests(junit_path: Path, max_lines: int = 8) -> list[tuple[str, list[str]]]:
    """(test id, first lines of its failure) for each failed or errored testcase of a JUnit file."""
    root = read_junit_root(junit_path)
    if root is None:
        return []
    found = []
    for case in root.iter("testcase"):
        for problem in list(case.findall("failure")) + list(case.findall("error")):
            text = (problem.get("message") or "") + "\n" + (problem.text or "")
            lines = [line for line in text.strip().splitlines() if line.strip()][:max_lines]
            found.append((f"{case.get('classname', '')}::{case.get('name', '')}", lines))
    return found


def read_junit_root(junit_path: Path) -> ET.Element | None:
    """The root element of a cell's junit.xml read safely (no links, bounded), or None."""
    try:
        return ET.fromstring(read_regular(junit_path))
    except (OSError, ET.ParseError, UnsafeResultFile):
        return None


def merged_junit(summary: dict[str, Any], out_dir: Path) -> ET.Element:
    """One <testsuite> per cell, named by cell id; cells that did not run get one skipped/error testcase."""
    root = ET.Element("testsuites", name="comm-harness")
    for cell in summary["cells"]:
        suite = _cell_suite(cell, out_dir)
        root.append(suite)
    return root


def _cell_suite(cell: dict[str, Any], out_dir: Path) -> ET.Element:
    junit = out_dir / cell["results_dir"] / JUNIT_XML if cell.get("results_dir") else None
    source = None
    parsed = read_junit_root(junit) if junit is not None else None
    if parsed is not None:
        source = parsed if parsed.tag == "testsuite" else parsed.find("testsuite")
    suite = ET.Element("testsuite", name=cell["id"])
    if source is not None:
        for name in ("tests", "failures", "errors", "skipped", "time", "timestamp", "hostname"):
            if source.get(name) is not None:
                suite.set(name, source.get(name, ""))
        for case in source.iter("testcase"):
            case.set("classname", f"{cell['id']}.{case.get('classname', '')}")
            suite.append(case)
    if cell["status"] in NOT_RUN_STATUSES and (source is None or cell["status"] != "skipped"):
        case = ET.SubElement(
            suite, "testcase", classname=cell["id"], name="cell", time=str(cell["duration_s"])
        )
        ET.SubElement(
            case,
            "skipped" if cell["status"] == "skipped" else "error",
            message=(cell["reason"].splitlines() or [""])[0],
        ).text = cell["reason"]
        suite.set("tests", str(int(suite.get("tests", "0")) + 1))
        kind = "skipped" if cell["status"] == "skipped" else "errors"
        suite.set(kind, str(int(suite.get(kind, "0")) + 1))
    return suite
