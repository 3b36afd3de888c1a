"""GitHub Actions' workflow commands: `::error file=...,line=...::` annotations, escaped and capped.

The `strategy.matrix` JSON that fans the cells out is in `harness/ci/github.py`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, Literal

from harness.common.untrusted_text import annotation_data, annotation_property

AnnotationKind = Literal["error", "warning", "notice"]
# GitHub shows at most 10 error and 10 warning annotations per step; more are dropped without a word.
ANNOTATIONS_PER_KIND = 10


def in_github_actions() -> bool:
    """Whether this process runs in a GitHub Actions job (which reads workflow commands from stdout)."""
    return os.environ.get("GITHUB_ACTIONS") == "true"


def annotation(
    kind: AnnotationKind,
    message: str,
    *,
    title: str | None = None,
    file: str | None = None,
    line: int | None = None,
) -> str:
    """A workflow command, e.g. `::error file=a.py,line=3,title=...::message`, escaped as GitHub reads it.

    The file, title and message may come from a cell: their escaping also keeps any command out of them.
    """
    properties = []
    if file:
        properties.append(f"file={annotation_property(file)}")
        if line:
            properties.append(f"line={int(line)}")
    if title:
        properties.append(f"title={annotation_property(title)}")
    head = f"::{kind} {','.join(properties)}" if properties else f"::{kind}"
    return f"{head}::{annotation_data(message)}"


def capped_annotations(items: Iterable[tuple[AnnotationKind, str, dict[str, Any]]]) -> list[str]:
    """Annotations, at most ANNOTATIONS_PER_KIND per kind, then one notice saying how many were left out."""
    shown: dict[str, int] = {}
    lines = []
    left_out = 0
    for kind, message, where in items:
        if shown.get(kind, 0) >= ANNOTATIONS_PER_KIND:
            left_out += 1
            continue
        shown[kind] = shown.get(kind, 0) + 1
        lines.append(annotation(kind, message, **where))
    if left_out:
        lines.append(
            annotation(
                "notice",
                f"{left_out} more annotation(s) left out (GitHub shows {ANNOTATIONS_PER_KIND} per kind "
                "and step); the step summary lists every failure",
                title="comm-harness",
            )
        )
    return lines
