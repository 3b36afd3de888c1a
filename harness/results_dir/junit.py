"""JUnit XML, the one reader and the one writer: counts, failures with their ranks, the merged document.

Every junit.xml the harness reads was written by a cell's pytest (untrusted): it is read through
`read_regular` (no links, bounded) and parsed here only.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.model import NOT_RUN_STATUSES, TestCounts
from harness.results_dir.files import HARVESTED_FILES, JUNIT_XML, UnsafeResultFile, read_regular, write_new
from harness.untrusted_text import xml_text

TRACEBACK_LINES = 12
LINE_CHARS = 240
_RANKS = re.compile(r"\branks? ((?:\d+, )*\d+) of (\d+)\b")
_LOCATION = re.compile(r"^(?P<file>[^\s:/][^\s:]*\.py):(?P<line>\d+): ", re.MULTILINE)


def parse_junit_counts(data: bytes) -> TestCounts:
    """Test counts summed over every testsuite of a JUnit document; ValueError when it is not one."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as error:
        raise ValueError(f"not well-formed XML ({error})") from None
    if root.tag not in ("testsuite", "testsuites"):
        raise ValueError(f"root element <{root.tag}> is neither <testsuites> nor <testsuite>")
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    counts = TestCounts()
    for suite in suites:
        try:
            tests, failures, errors, skipped = (
                int(suite.get(name, 0)) for name in ("tests", "failures", "errors", "skipped")
            )
        except ValueError as error:
            raise ValueError(f"a testsuite's counts are not numbers ({error})") from None
        counts.failed += failures
        counts.errors += errors
        counts.skipped += skipped
        counts.passed += max(0, tests - failures - errors - skipped)
    return counts


def read_junit_counts(junit_path: Path) -> TestCounts | None:
    """Counts of a JUnit file, or None when it is missing, unsafe or unreadable."""
    try:
        return parse_junit_counts(read_regular(junit_path, HARVESTED_FILES[JUNIT_XML]))
    except (OSError, ValueError, UnsafeResultFile):
        return None


def read_junit_root(junit_path: Path) -> ET.Element | None:
    """The root element of a junit.xml read safely (no links, bounded), or None."""
    try:
        return ET.fromstring(read_regular(junit_path, HARVESTED_FILES[JUNIT_XML]))
    except (OSError, ET.ParseError, UnsafeResultFile):
        return None


@dataclass
class Failure:
    """A failed or errored test of a cell: where, which ranks, and the first lines of what it said."""

    cell: str
    test: str
    summary: str
    lines: list[str]
    more_lines: int = 0
    ranks: list[int] = field(default_factory=list)
    world_size: int | None = None
    file: str | None = None
    line: int | None = None

    def one_line(self) -> str:
        """The one line a terminal or CI log shows: 'FAILED cell test [ranks 0, 1 of 2]: cause'."""
        return f"FAILED {self.cell} {self.test}{rank_suffix(self.summary)}: {self.summary}"

    def rank_text(self) -> str:
        """'rank 1 of 2', 'ranks 0, 3 of 4'."""
        noun = "rank" if len(self.ranks) == 1 else "ranks"
        return f"{noun} {', '.join(map(str, self.ranks))} of {self.world_size}"

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def junit_failures(cell_id: str, junit_path: Path, max_lines: int = TRACEBACK_LINES) -> list[Failure]:
    """The failed and errored tests of a junit.xml, each with its ranks, location and first lines."""
    root = read_junit_root(junit_path)
    if root is None:
        return []
    failures = []
    for case in root.iter("testcase"):
        for problem in [*case.findall("failure"), *case.findall("error")]:
            message = problem.get("message") or ""
            text = problem.text or ""
            summary = (message.strip().splitlines() or text.strip().splitlines() or [problem.tag])[0]
            body = [line for line in text.splitlines() if line.strip()]
            if body and body[0].strip() == summary.strip():
                body = body[1:]
            ranks, world_size = ranks_in(summary)
            location = _LOCATION.search(text)
            failures.append(
                Failure(
                    cell=cell_id,
                    test=node_id_of(case),
                    summary=summary[: LINE_CHARS * 2],
                    lines=[clip(line) for line in body[:max_lines]],
                    more_lines=max(0, len(body) - max_lines),
                    ranks=ranks,
                    world_size=world_size,
                    file=location["file"] if location else None,
                    line=int(location["line"]) if location else None,
                )
            )
    return failures


def node_id_of(case: Any) -> str:
    """The pytest node id of a JUnit testcase: what users paste back into `pytest`."""
    classname, name = case.get("classname", ""), case.get("name", "")
    if not classname:
        return name
    # pytest's classname is the dotted module path, then the test classes (capitalised, by pytest's naming).
    parts = classname.split(".")
    first_class = next((i for i, part in enumerate(parts) if i and part[:1].isupper()), len(parts))
    module = "/".join(parts[:first_class]) + ".py"
    return "::".join([module, *parts[first_class:], name])


def ranks_in(text: str) -> tuple[list[int], int | None]:
    """The ranks and world size a failure message names ('ranks 0, 1 of 2 failed: ...')."""
    ranks: set[int] = set()
    world_size = None
    for match in _RANKS.finditer(text):
        ranks.update(int(rank) for rank in match.group(1).split(", "))
        world_size = int(match.group(2))
    return sorted(ranks), world_size


def rank_suffix(message: str) -> str:
    """' [ranks 0, 1 of 2]' for a message that names ranks, else ''."""
    ranks, world_size = ranks_in(message)
    if not ranks:
        return ""
    noun = "rank" if len(ranks) == 1 else "ranks"
    return f" [{noun} {', '.join(map(str, ranks))} of {world_size}]"


def clip(line: str) -> str:
    """A line cut to LINE_CHARS, marked when cut."""
    return line if len(line) <= LINE_CHARS else line[:LINE_CHARS] + " …"


def merged_junit(cells: list[dict[str, Any]], base: Path) -> ET.Element:
    """One <testsuite> per cell, named by cell id; cells that did not run get one skipped/error testcase.

    A cell's `results_dir` is relative to `base` (absolute ones, as in merged reports, stay as they are).
    """
    root = ET.Element("testsuites", name="comm-harness")
    for cell in cells:
        root.append(_cell_suite(cell, base))
    return root


def _cell_suite(cell: dict[str, Any], base: Path) -> ET.Element:
    junit = base / cell["results_dir"] / JUNIT_XML if cell.get("results_dir") else None
    parsed = read_junit_root(junit) if junit is not None else None
    source = None
    if parsed is not None:
        source = parsed if parsed.tag == "testsuite" else parsed.find("testsuite")
    cell_id = xml_text(cell["id"])
    suite = ET.Element("testsuite", name=cell_id)
    if source is not None:
        for name in ("tests", "failures", "errors", "skipped", "time", "timestamp", "hostname"):
            if source.get(name) is not None:
                suite.set(name, source.get(name, ""))
        for case in source.iter("testcase"):
            case.set("classname", f"{cell_id}.{case.get('classname', '')}")
            suite.append(case)
    if cell["status"] in NOT_RUN_STATUSES and (source is None or cell["status"] != "skipped"):
        case = ET.SubElement(
            suite, "testcase", classname=cell_id, name="cell", time=str(cell["duration_s"])
        )
        # The reason may quote the cell's log: XML cannot hold its control characters.
        ET.SubElement(
            case,
            "skipped" if cell["status"] == "skipped" else "error",
            message=xml_text((cell["reason"].splitlines() or [""])[0]),
        ).text = xml_text(cell["reason"])
        suite.set("tests", str(int(suite.get("tests", "0")) + 1))
        kind = "skipped" if cell["status"] == "skipped" else "errors"
        suite.set(kind, str(int(suite.get(kind, "0")) + 1))
    return suite


def write_junit(root: ET.Element, path: Path) -> None:
    """Write an XML document atomically (indented, with its declaration)."""
    tree = ET.ElementTree(root)
    ET.indent(tree)
    write_new(path, ET.tostring(root, encoding="utf-8", xml_declaration=True))
