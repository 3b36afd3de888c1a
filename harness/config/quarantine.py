"""Quarantined tests (matrix.yaml's `quarantine:`): which tests an entry names (what became of them is the
results' to say: harness/results/quarantine.py).

An entry's `test` is a pytest node id or a pattern of one: `*` stands for any run of characters (nothing
else is special, so a parametrization's brackets are literal), and a node id also names its
parametrizations (`t` names `t[2-gloo]`) and a file or class names the tests in it (`tests/x.py` names
`tests/x.py::t`). A quarantined test runs as any other; when it fails (or errors) the cell counts it as
quarantined instead of failed, and its verdict is that of the rest of its tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from harness.config.model import QuarantineEntry

_WORD = re.compile(r"[A-Za-z0-9_]")


def pattern_problem(pattern: str) -> str:
    """What is wrong with a `quarantine:` test pattern, or '' when nothing."""
    if not pattern.strip():
        return "is empty; write a pytest node id, e.g. tests/test_x.py::test_y"
    if any(character.isspace() for character in pattern):
        return f"{pattern!r} holds white space; a pytest node id has none"
    if not _WORD.search(pattern.replace("*", "")):
        return f"{pattern!r} would quarantine every test; name a file, class or test"
    return ""


def issue_problem(issue: str) -> str:
    """What is wrong with an entry's issue link, or '' when nothing."""
    if not re.fullmatch(r"https?://\S+", issue):
        return f"{issue!r} is not a link; write the issue's URL (https://...)"
    return ""


def _regex(pattern: str) -> re.Pattern[str]:
    body = ".*".join(re.escape(part) for part in pattern.split("*"))
    # A node id also names its parametrizations and, for a file or class, the tests in it.
    return re.compile(rf"{body}(?:\[.*|::.*)?", re.DOTALL)


def matches(pattern: str, node_id: str) -> bool:
    """Whether the `quarantine:` pattern names the test `node_id`."""
    return _regex(pattern).fullmatch(node_id) is not None


def entry_of(entries: Iterable[QuarantineEntry], node_id: str) -> QuarantineEntry | None:
    """The first entry that names `node_id`, or None."""
    return next((entry for entry in entries if matches(entry.test, node_id)), None)
