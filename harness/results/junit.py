"""JUnit XML, the one reader and the one writer: counts, failures with their ranks, the merged document.

Every junit.xml the harness reads was written by a cell's pytest (untrusted): it is read through
`read_chunks` (no links, bounded) and parsed here only, as a stream (`scan_junit`): each testcase is
handed on and dropped once read, so memory stays that of one testcase whatever the file holds, and a
cell's failures keep their details for the first FAILURE_DETAILS only (the rest are counted). The parser is
expat's, which refuses entity expansion bombs ("billion laughs") and never fetches external entities.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from xml.sax.saxutils import quoteattr

from harness.common.untrusted_text import xml_text
from harness.config.model import KNOWN_GAP_REASON
from harness.config.quarantine import matches
from harness.results.cell_result import (
    FAILING_STATUSES,
    NOT_RUN_STATUSES,
    SKIP_REASON_CHARS,
    SKIP_REASONS_KEPT,
    SKIP_REASONS_OTHER,
    CellResult,
    QuarantineRecord,
    TestCounts,
)
from harness.results.files import (
    HARVESTED_FILES,
    JUNIT_XML,
    UnsafeResultFile,
    read_chunks,
    read_regular,
    replacing,
)

TRACEBACK_LINES = 12
LINE_CHARS = 240
# Failed tests of one cell whose details (message, traceback lines, ranks) a report keeps; beyond these it
# counts them. Every view shows fewer (the terminal 10 per cell, Markdown 1 MiB, GitHub 10 annotations).
FAILURE_DETAILS = 100
# pytest nests five elements deep; deeper is hostile (and ElementTree serialises recursively).
MAX_ELEMENT_DEPTH = 64
# Elements of one testcase kept (properties, failure, system-out...); the rest are dropped as they end,
# so that one testcase of a million children cannot hold them all in memory.
MAX_CASE_ELEMENTS = 256
_RANKS = re.compile(r"\branks? ((?:\d+, )*\d+) of (\d+)\b")
_LOCATION = re.compile(r"^(?P<file>[^\s:/][^\s:]*\.py):(?P<line>\d+): ", re.MULTILINE)
_COUNTED = ("tests", "failures", "errors", "skipped")

# Called with each top-level <testsuite> as it starts (attributes read, children not yet), and its number.
OnSuite = Callable[[ET.Element, int], None]
# Called with each <testcase> once read whole, and the number of the top-level suite holding it (or None).
OnCase = Callable[[ET.Element, "int | None"], None]


def scan_junit(path: Path, on_case: OnCase | None = None, on_suite: OnSuite | None = None) -> TestCounts:
    """Stream a junit.xml: the test counts summed over its testsuites, each testcase handed to `on_case`.

    ValueError when it is not a JUnit document (or not well-formed), UnsafeResultFile when it is a link or
    over its limit, OSError (FileNotFoundError...) when it cannot be read. Callbacks may have run by then.
    """
    counts = TestCounts()
    stack: list[ET.Element] = []
    suites = 0
    suite: int | None = None  # the number of the top-level suite being read
    suite_at: int | None = None  # and its depth
    case_at: int | None = None  # the depth of the testcase being read
    case_elements = 0
    try:
        for event, element in _events(path):
            if event == "start":
                if not stack and element.tag not in ("testsuite", "testsuites"):
                    raise ValueError(f"root element <{element.tag}> is neither <testsuites> nor <testsuite>")
                if len(stack) == MAX_ELEMENT_DEPTH:
                    raise ValueError(f"elements nested deeper than {MAX_ELEMENT_DEPTH}")
                top_suite = element.tag == "testsuite" and (
                    not stack or (len(stack) == 1 and stack[0].tag == "testsuites")
                )
                if top_suite:
                    _add_counts(counts, element)
                    suite, suite_at, suites = suites, len(stack) + 1, suites + 1
                    if on_suite is not None:
                        on_suite(element, suite)
                stack.append(element)
                if case_at is None and element.tag == "testcase":
                    case_at, case_elements = len(stack), 0
                elif case_at is not None:
                    case_elements += 1
                continue
            depth = len(stack)
            stack.pop()
            parent = stack[-1] if stack else None
            if depth == case_at:
                if is_flaky_case(element):
                    counts.flaky += 1
                if is_known_gap(element) and counts.skipped:
                    counts.skipped -= 1
                    counts.known_gaps += 1
                if on_case is not None:
                    on_case(element, suite)
                case_at = None
            elif depth == suite_at:
                suite = suite_at = None
            if parent is None:
                continue
            if case_at is None:
                # Everything outside a testcase is dropped as it ends: it is the first child left in its
                # parent (the ones before it ended, and were dropped, first).
                if parent[0] is element:
                    del parent[0]
                else:
                    parent.remove(element)
            elif case_elements > MAX_CASE_ELEMENTS:
                parent.remove(element)
    except ET.ParseError as error:
        raise ValueError(f"not well-formed XML ({error})") from None
    return counts


# Surefire's elements for a failed attempt of a test that passed later (the plugin's --dist-retries).
FLAKY_TAGS = ("flakyFailure", "flakyError")


def is_flaky_case(case: ET.Element) -> bool:
    """A testcase that passed after failed attempts: flakyFailure/flakyError, no failure, error or skip."""
    tags = {child.tag for child in case}
    return bool(tags & set(FLAKY_TAGS)) and not tags & {"failure", "error", "skipped"}


def is_known_gap(case: ET.Element) -> bool:
    """Whether a testcase is a holding known gap: pytest writes a strict xfail as <skipped
    type="pytest.xfail">, with the reason the plugin gave it ("known gap of vllm on cpu: ...")."""
    skipped = case.find("skipped")
    return (
        skipped is not None
        and skipped.get("type") == "pytest.xfail"
        and (skipped.get("message") or "").startswith(KNOWN_GAP_REASON)
    )


def _events(path: Path) -> Iterator[tuple[str, ET.Element]]:
    parser = ET.XMLPullParser(events=("start", "end"))
    for chunk in read_chunks(path, HARVESTED_FILES[JUNIT_XML], chunk=64 << 10):
        parser.feed(chunk)
        yield from parser.read_events()
    parser.close()
    yield from parser.read_events()


def _add_counts(counts: TestCounts, suite: ET.Element) -> None:
    try:
        tests, failures, errors, skipped = (int(suite.get(name, 0)) for name in _COUNTED)
    except ValueError as error:
        raise ValueError(f"a testsuite's counts are not numbers ({error})") from None
    counts.failed += failures
    counts.errors += errors
    counts.skipped += skipped
    counts.passed += max(0, tests - failures - errors - skipped)


def junit_counts(junit_path: Path) -> TestCounts:
    """Counts of a junit.xml; ValueError, UnsafeResultFile or OSError as `scan_junit`."""
    return scan_junit(junit_path)


def read_junit_counts(junit_path: Path) -> TestCounts | None:
    """Counts of a JUnit file, or None when it is missing, unsafe or unreadable."""
    try:
        return scan_junit(junit_path)
    except (OSError, ValueError, UnsafeResultFile):
        return None


def read_junit_root(junit_path: Path) -> ET.Element | None:
    """The whole tree of a junit.xml read safely (no links, bounded), or None: for small files the harness
    wrote itself (the conformance table); reports stream with `scan_junit`."""
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
    # A flaky test's: how many attempts failed before it passed (0 for a failure).
    attempts_failed: int = 0

    def one_line(self) -> str:
        """The one line a terminal or CI log shows: 'FAILED cell test [ranks 0, 1 of 2]: cause'."""
        return f"FAILED {self.cell} {self.test}{rank_suffix(self.summary)}: {self.summary}"

    def flaky_line(self) -> str:
        """A flaky test's line: 'FLAKY cell test: passed after 1 failed attempt(s); first: cause'."""
        return (
            f"FLAKY {self.cell} {self.test}: passed after {self.attempts_failed} failed attempt(s); "
            f"first: {self.summary}"
        )

    def rank_text(self) -> str:
        """'rank 1 of 2', 'ranks 0, 3 of 4'."""
        noun = "rank" if len(self.ranks) == 1 else "ranks"
        return f"{noun} {', '.join(map(str, self.ranks))} of {self.world_size}"

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class CellFailures:
    """The failed and errored tests of one cell as its junit.xml streams by (an `OnCase`): the details of
    the first `limit`, and how many more there were."""

    cell: str
    limit: int = FAILURE_DETAILS
    failures: list[Failure] = field(default_factory=list)
    left_out: int = 0
    # Tests that passed after failed attempts: the first failed attempt of the first `limit` of them.
    flaky: list[Failure] = field(default_factory=list)

    def __call__(self, case: ET.Element, suite: int | None = None) -> None:
        if is_flaky_case(case) and len(self.flaky) < self.limit:
            attempts = [child for child in case if child.tag in FLAKY_TAGS]
            flaky = failure_of(self.cell, case, attempts[0])
            flaky.attempts_failed = len(attempts)
            self.flaky.append(flaky)
        for problem in [*case.findall("failure"), *case.findall("error")]:
            if len(self.failures) < self.limit:
                self.failures.append(failure_of(self.cell, case, problem))
            else:
                self.left_out += 1


def failure_of(
    cell_id: str, case: ET.Element, problem: ET.Element, max_lines: int = TRACEBACK_LINES
) -> Failure:
    """A testcase's <failure> or <error>: its ranks, location and first lines."""
    message = problem.get("message") or ""
    # Surefire's flaky and rerun elements hold the text in a <stackTrace> child.
    text = problem.text or problem.findtext("stackTrace") or ""
    summary = (message.strip().splitlines() or text.strip().splitlines() or [problem.tag])[0]
    body = [line for line in text.splitlines() if line.strip()]
    if body and body[0].strip() == summary.strip():
        body = body[1:]
    ranks, world_size = ranks_in(summary)
    location = _LOCATION.search(text)
    return Failure(
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


def junit_failures(
    cell_id: str,
    junit_path: Path,
    limit: int = FAILURE_DETAILS,
    quarantine: Iterable[QuarantineRecord] = (),
) -> CellFailures:
    """The failed and errored tests of a junit.xml (details of the first `limit`), quarantined ones left out;
    none when unreadable."""
    found = CellFailures(cell_id, limit)
    quarantine = tuple(quarantine)

    def on_case(case: ET.Element, suite: int | None) -> None:
        quarantine_case(case, quarantine)
        found(case, suite)

    try:
        scan_junit(junit_path, on_case)
    except (OSError, ValueError, UnsafeResultFile):
        return CellFailures(cell_id, limit)
    return found


def quarantine_case(case: ET.Element, records: Iterable[QuarantineRecord]) -> tuple[int, int]:
    """Rewrite a failed or errored testcase of a quarantined test (`records`: its cell's) as JUnit readers
    show a known, allowed failure, as pytest and Surefire write an xfail: a <skipped message="quarantined:
    reason (issue)">, the failure's text kept in <system-out>. Returns the (failures, errors) it rewrote."""
    problems = [child for child in case if child.tag in ("failure", "error")]
    if not problems:
        return 0, 0
    node_id = node_id_of(case)
    record = next((r for r in records if matches(r.test, node_id)), None)
    if record is None:
        return 0, 0
    kept = []
    for problem in problems:
        case.remove(problem)
        text = f"quarantined {problem.tag}: {problem.get('message') or ''}\n{problem.text or ''}"
        kept.append(text.rstrip())
    message = xml_text(f"quarantined: {record.reason} ({record.issue})")
    case.insert(0, ET.Element("skipped", type="quarantined", message=message))
    output = case.find("system-out")
    if output is None:
        output = ET.SubElement(case, "system-out")
    output.text = "\n".join(kept) + (f"\n{output.text}" if output.text else "")
    return sum(p.tag == "failure" for p in problems), sum(p.tag == "error" for p in problems)


class SkipReasons:
    """An `OnCase` for a cell's junit.xml: its skipped tests' distinct reasons (first line, clipped), with how
    many tests gave each; over SKIP_REASONS_KEPT reasons, the rest are counted under one line."""

    def __init__(self) -> None:
        self.reasons: dict[str, int] = {}

    def __call__(self, case: ET.Element, suite: int | None = None) -> None:
        skipped = case.find("skipped")
        if skipped is None or is_known_gap(case):
            return
        text = (skipped.get("message") or skipped.text or "").strip()
        reason = (text.splitlines() or ["no reason given"])[0][:SKIP_REASON_CHARS]
        if skipped.get("type") == "pytest.xfail":
            reason = f"xfail: {reason}"
        if reason not in self.reasons and len(self.reasons) >= SKIP_REASONS_KEPT:
            reason = SKIP_REASONS_OTHER
        self.reasons[reason] = self.reasons.get(reason, 0) + 1


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


# The merged document: one <testsuite> per cell, named by cell id, written as a stream.
MERGED_HEAD = b"<?xml version='1.0' encoding='utf-8'?>\n<testsuites name=\"comm-harness\">\n"
MERGED_TAIL = b"</testsuites>\n"
_SUITE_ATTRIBUTES = ("tests", "failures", "errors", "skipped", "time", "timestamp", "hostname")


def write_merged_junit(cells: list[CellResult], base: Path, path: Path) -> dict[str, CellFailures]:
    """The merged junit.xml of `cells` at `path`, atomically; each cell's junit.xml is streamed through,
    once: returns the failures of the cells that failed or errored, read on the way.

    A cell's `results_dir` is relative to `base` (absolute ones, as in merged reports, stay as they are).
    """
    found: dict[str, CellFailures] = {}
    with replacing(path) as stream:
        stream.write(MERGED_HEAD)
        for cell in cells:
            found[cell.id] = append_cell_suite(cell, base, stream)
        stream.write(MERGED_TAIL)
    return found


def append_cell_suite(cell: CellResult, base: Path, stream: IO[bytes]) -> CellFailures:
    """Write `cell`'s <testsuite> (see `write_cell_suite`); returns its failures when it failed or errored,
    and its flaky tests."""
    found = CellFailures(cell.id)
    read = write_cell_suite(cell, base, stream, found)
    if cell.status not in FAILING_STATUSES:
        found.failures, found.left_out = [], 0
    # As `junit_failures`: a junit.xml that breaks off lists no failures, not those before the break.
    return found if read else CellFailures(cell.id)


def write_cell_suite(
    cell: CellResult, base: Path, stream: IO[bytes], on_case: OnCase | None = None
) -> bool:
    """Write `cell`'s <testsuite> to `stream`: the testcases of its junit's first suite, their classname
    prefixed with the cell id, quarantined failures as skips (`quarantine_case`); a cell that did not run
    gets one skipped or error testcase. `on_case` sees every testcase too (quarantined ones rewritten), so
    one read serves both (the run's failures and its junit.xml). Returns whether the cell's junit.xml was
    read whole."""
    source: dict[str, str] | None = None
    rewritten = [0, 0]  # quarantined failures and errors written as skips

    def first_suite(element: ET.Element, number: int) -> None:
        nonlocal source
        if number == 0:
            source = {k: v for k in _SUITE_ATTRIBUTES if (v := element.get(k)) is not None}

    # The suite's counts come before its testcases, and quarantined ones change them: the testcases wait
    # in a spool (memory, then disk) until the counts are known.
    with tempfile.SpooledTemporaryFile(max_size=8 << 20) as cases:

        def copy_case(case: ET.Element, suite: int | None) -> None:
            moved = quarantine_case(case, cell.quarantine)
            if on_case is not None:
                on_case(case, suite)
            if suite == 0:
                rewritten[0] += moved[0]
                rewritten[1] += moved[1]
                case.set("classname", f"{cell.id}.{case.get('classname', '')}")
                cases.write(f"    {element_xml(case)}\n".encode())

        junit = base / cell.results_dir / JUNIT_XML if cell.results_dir else None
        read = False
        try:
            if junit is None:
                raise FileNotFoundError(JUNIT_XML)
            scan_junit(junit, copy_case, first_suite)
            read = True
        except (OSError, ValueError, UnsafeResultFile):
            # Unreadable, or not JUnit after all: nothing of it, as if there were no junit.xml.
            cases.seek(0)
            cases.truncate()
            source = None
        attributes = {"name": xml_text(cell.id)}
        if source is not None:
            attributes.update(source)
            if any(rewritten):
                for name, moved in (("failures", rewritten[0]), ("errors", rewritten[1])):
                    attributes[name] = str(max(0, _as_int(attributes.get(name)) - moved))
                attributes["skipped"] = str(_as_int(attributes.get("skipped")) + sum(rewritten))
        extra = _not_run_case(cell, source is not None)
        if extra is not None:
            kind = "skipped" if cell.status == "skipped" else "errors"
            for name in ("tests", kind):
                attributes[name] = str(_as_int(attributes.get(name)) + 1)
        text = " ".join(f"{name}={quoteattr(value)}" for name, value in attributes.items())
        stream.write(f"  <testsuite {text}>\n".encode())
        cases.seek(0)
        shutil.copyfileobj(cases, stream)
    if extra is not None:
        stream.write(f"    {element_xml(extra)}\n".encode())
    stream.write(b"  </testsuite>\n")
    return read


def element_xml(element: ET.Element) -> str:
    """`element` and what it holds as XML, its tail left out: ET.tostring's output for the plain elements of
    a junit.xml, without its set-up per call (a writer, a scan for namespaces), which made copying 600,000
    testcases take half a minute. Namespaced elements go through ET.tostring."""
    tag = element.tag
    text = f"<{tag}"
    for name, value in element.items():
        if name[:1] == "{":
            return _namespaced(element)
        text += (
            f' {name}="{_escape_attribute(value)}"'
            if _ATTRIBUTE_SPECIAL.search(value)
            else f' {name}="{value}"'
        )
    if tag[:1] == "{":
        return _namespaced(element)
    inner = _escape(element.text) if element.text else ""
    for child in element:
        inner += element_xml(child)
        if child.tail:
            inner += _escape(child.tail)
    return f"{text}>{inner}</{tag}>" if inner else f"{text} />"


_TEXT_SPECIAL = re.compile("[&<>]")
_ATTRIBUTE_SPECIAL = re.compile('[&<>"\n\r\t]')


def _escape(text: str) -> str:
    if not _TEXT_SPECIAL.search(text):
        return text
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _escape_attribute(value: str) -> str:
    escaped = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    return escaped.replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#09;")


def _namespaced(element: ET.Element) -> str:
    tail, element.tail = element.tail, None
    text = ET.tostring(element, encoding="unicode")
    element.tail = tail
    return text


def _not_run_case(cell: CellResult, suite_seen: bool) -> ET.Element | None:
    """The testcase standing for a cell that did not run (for a skipped one, only without its own junit)."""
    if cell.status not in NOT_RUN_STATUSES or (suite_seen and cell.status == "skipped"):
        return None
    case = ET.Element("testcase", classname=xml_text(cell.id), name="cell", time=str(cell.duration_s))
    ET.SubElement(
        case,
        "skipped" if cell.status == "skipped" else "error",
        # The reason may quote the cell's log: XML cannot hold its control characters.
        message=xml_text((cell.reason.splitlines() or [""])[0]),
    ).text = xml_text(cell.reason)
    return case


def _as_int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


class MergedJunitFile:
    """The run's merged junit.xml, grown by one <testsuite> per finished cell: each cell's junit.xml is read
    once, whatever the number of cells (rewriting the whole document after each cell was quadratic).

    Between cells the file is a complete document, its suites in the order the cells finished; `finish`
    puts them in the run's order (copying bytes, parsing nothing). It is written in place, so a reader
    during a cell's append (or a harness killed in it) can see it without its closing tag; `harness report
    --junit` writes it anew from the cells' files.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        with replacing(path) as stream:
            stream.write(MERGED_HEAD + MERGED_TAIL)
        # The harness's own file, opened once: a link planted at its name later is never followed.
        self._stream = os.fdopen(os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC), "r+b")
        self._suites: dict[str, tuple[int, int]] = {}  # cell id: where its suite starts, its length

    def append(self, cell: CellResult, base: Path) -> CellFailures:
        """Append `cell`'s suite (see `write_cell_suite`); returns its failures when it failed or errored."""
        start = self._stream.seek(-len(MERGED_TAIL), 2)
        found = append_cell_suite(cell, base, self._stream)
        self._suites[cell.id] = (start, self._stream.tell() - start)
        self._stream.write(MERGED_TAIL)
        self._stream.truncate()
        self._stream.flush()
        return found

    def finish(self, order: list[str]) -> None:
        """Rewrite the document (atomically) with its suites in `order`, and close it."""
        with replacing(self.path) as stream:
            stream.write(MERGED_HEAD)
            for cell_id in order:
                start, left = self._suites.get(cell_id, (0, 0))
                self._stream.seek(start)
                while left > 0:
                    data = self._stream.read(min(left, 1 << 20))
                    if not data:
                        break
                    stream.write(data)
                    left -= len(data)
            stream.write(MERGED_TAIL)
        self.close()

    def close(self) -> None:
        self._stream.close()
