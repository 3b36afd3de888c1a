"""The conformance table of a run: operation x platform x world size, pass / known gap (reason) / FAIL.

    harness conformance RESULTS_DIR [--out FILE] [--title TEXT]    (harness/commands/conformance.py)

Reads the merged junit.xml `harness run` wrote (one testsuite per cell, named by cell id) and writes Markdown
a maintainer can paste into an issue: one row per operation, one column per platform and world size, each
known gap as a numbered note with the reason the adapter recorded, then every test's outcome.
Only tests of the conformance suite appear: those the plugin gave a `communicator_platform` property (the
tests that use the communicator fixture and ran).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from harness.adapters.base import strip_platform_id
from harness.common.untrusted_text import markdown_code, markdown_text
from harness.config.model import KNOWN_GAP_REASON
from harness.results.junit import read_junit_root

# First match wins: the operation a test exercises, from words in its name.
OPERATIONS: tuple[tuple[str, str], ...] = (
    # Before the collectives: a sub-group's all_reduce is judged for its group-rank translation.
    ("sub-groups", r"^subgroup_"),
    ("barrier", r"barrier"),
    ("input checks", r"bad_sizes|raise_before"),
    ("all2all backend names", r"backend|unknown_name|known_name"),
    ("dispatch_router_logits", r"router_logits"),
    ("dispatch / combine", r"dispatch|combine"),
    ("all_gatherv", r"all_gatherv|gatherv"),
    ("all_gather", r"all_gather"),
    ("reduce_scatterv", r"reduce_scatterv|scatterv"),
    ("reduce_scatter", r"reduce_scatter"),
    ("gather", r"gather"),
    ("broadcast", r"broadcast"),
    ("send / recv", r"send|recv"),
    ("all_reduce", r"all_reduce"),
)
PLATFORM_ORDER = ("cpu", "xpu_emulated", "cuda_emulated", "cuda", "xpu")
PLATFORM_PROPERTY = "communicator_platform"
_WORLD_SIZE = re.compile(r"-ws(\d+)(?:-|$)")


@dataclass(frozen=True)
class Outcome:
    """One test of one cell."""

    operation: str
    test: str  # the test's name without the platform id
    platform: str
    world_size: int
    status: str  # pass, xfail, FAIL, skip
    reason: str = ""


def read_outcomes(junit_path: Path) -> list[Outcome]:
    """Every conformance test in a merged junit.xml (tests without a platform parameter are left out)."""
    root = read_junit_root(junit_path)
    if root is None:
        raise ValueError(f"{junit_path}: not a readable JUnit XML file")
    outcomes = []
    for suite in root.iter("testsuite"):
        found = _WORLD_SIZE.search(suite.get("name", ""))
        if found is None:
            continue
        for case in suite.iter("testcase"):
            properties = {p.get("name"): p.get("value") for p in case.iter("property")}
            platform = properties.get(PLATFORM_PROPERTY)
            if not platform:
                continue
            test = strip_platform_id(case.get("name", ""), platform)
            status, reason = _status(case)
            outcomes.append(Outcome(_operation(test), test, platform, int(found.group(1)), status, reason))
    return outcomes


def _status(case: ET.Element) -> tuple[str, str]:
    for child in case:
        if child.tag in ("failure", "error"):
            return "FAIL", (child.get("message") or "").splitlines()[0] if child.get("message") else ""
        if child.tag == "skipped":
            message = child.get("message") or ""
            if child.get("type") == "pytest.xfail":
                return ("known gap" if _is_gap(message) else "xfail"), _gap_reason(message)
            return "skip", message
    return "pass", ""


def _is_gap(message: str) -> bool:
    return message.removeprefix("reason: ").startswith(KNOWN_GAP_REASON)


def _gap_reason(message: str) -> str:
    # "known gap of vllm on cpu: <reason>" -> "<reason>"
    return re.sub(r"^(?:reason: )?known gap of \S+ on \S+: ", "", message)


def _operation(test: str) -> str:
    name = test.removeprefix("test_")
    for operation, pattern in OPERATIONS:
        if re.search(pattern, name):
            return operation
    return "other"


def render_table(outcomes: list[Outcome], title: str) -> str:
    """The Markdown: the operation table with numbered gap notes, then each test's outcome per column."""
    columns = sorted(
        {(o.platform, o.world_size) for o in outcomes},
        key=lambda c: (PLATFORM_ORDER.index(c[0]) if c[0] in PLATFORM_ORDER else 99, c[1]),
    )
    operations = [name for name, _ in OPERATIONS if any(o.operation == name for o in outcomes)]
    operations += ["other"] if any(o.operation == "other" for o in outcomes) else []
    notes: dict[str, int] = {}
    cells: dict[tuple[str, str, int], list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        cells[(outcome.operation, outcome.platform, outcome.world_size)].append(outcome)
        if outcome.status in ("known gap", "xfail"):
            notes.setdefault(outcome.reason, len(notes) + 1)

    header = "| operation | " + " | ".join(f"{_label(p)} ws{n}" for p, n in columns) + " |"
    lines = [f"# {title}", "", header, "|---" * (len(columns) + 1) + "|"]
    for operation in operations:
        row = [_summarize(cells[(operation, p, n)], notes) for p, n in columns]
        lines.append(f"| {operation} | " + " | ".join(row) + " |")
    lines += [
        "",
        "pass: every test of the operation passed. known gap [n]: the recorded gap n holds (a strict xfail).",
    ]
    lines += [
        "FAIL: a test failed, or a recorded gap no longer holds. (k/m): k of the operation's m tests.",
        "",
    ]
    # Test names, platforms and reasons are read from junit.xml: shown literally, never as Markdown.
    lines += [f"{number}. {markdown_text(reason)}" for reason, number in notes.items()]
    lines += [
        "",
        "## Every test",
        "",
        "| test | " + " | ".join(f"{_label(p)} ws{n}" for p, n in columns) + " |",
    ]
    lines.append("|---" * (len(columns) + 1) + "|")
    by_test: dict[str, dict[tuple[str, int], Outcome]] = defaultdict(dict)
    for outcome in outcomes:
        by_test[outcome.test][(outcome.platform, outcome.world_size)] = outcome
    for test in sorted(by_test):
        row = [_one(by_test[test].get(column), notes) for column in columns]
        lines.append(f"| {markdown_code(test, in_table=True)} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _label(platform: str) -> str:
    return markdown_text(platform.replace("_emulated", "-emulated"), in_table=True)


def _summarize(outcomes: list[Outcome], notes: dict[str, int]) -> str:
    if not outcomes:
        return "-"
    counts: dict[str, int] = defaultdict(int)
    for outcome in outcomes:
        counts[_one(outcome, notes)] += 1
    if len(counts) == 1:
        return next(iter(counts))
    total = len(outcomes)
    return ", ".join(f"{label} ({count}/{total})" for label, count in sorted(counts.items()))


def _one(outcome: Outcome | None, notes: dict[str, int]) -> str:
    if outcome is None:
        return "-"
    if outcome.status in ("known gap", "xfail"):
        return f"{outcome.status} [{notes[outcome.reason]}]"
    return outcome.status
