"""GitHub Actions: the `strategy.matrix` JSON that fans the cells out, and workflow-command annotations.

The cells of matrix.yaml are the single source of truth (as cibuildwheel's build identifiers are): the plan
job prints `github_matrix(...)` into $GITHUB_OUTPUT and every cell job reads its entry back by `fromJSON`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from harness.errors import ConfigurationError
from harness.images import recipe_for
from harness.model import Cell

AnnotationKind = Literal["error", "warning", "notice"]
# GitHub shows at most 10 error and 10 warning annotations per step; more are dropped without a word.
ANNOTATIONS_PER_KIND = 10
SELF_HOSTED = "self-hosted"
_CACHE_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def artifact_name(cell_id: str) -> str:
    """The artifact a cell job uploads its results directory as (unique per leg, as GitHub requires)."""
    return f"results-{cell_id}"


def matrix_entry(cell: Cell, root: Path) -> dict[str, Any]:
    """One `include` entry: what a cell job needs to pick its runner, load its image and run the cell."""
    if not cell.runs_on:
        raise ConfigurationError(
            f"{cell.source}: cell {cell.id} has no runner labels; add `runs_on: [...]` under "
            f"devices.{cell.device} (e.g. [ubuntu-latest] for cpu, [self-hosted, linux, gpu-nvidia] for cuda)"
        )
    recipe = recipe_for(cell.device, cell.image, root)
    tag = recipe.tag
    hosted = SELF_HOSTED not in cell.runs_on
    return {
        "cell": cell.id,
        "runs-on": list(cell.runs_on),
        "device": cell.device,
        "backend": cell.backend,
        "world_size": cell.world_size,
        "required": cell.required,
        "params": dict(cell.params),
        "image": tag,
        # GitHub-hosted runners start empty: their job caches the image as a tarball. A self-hosted
        # runner keeps its images in its own engine, and a GPU image would not fit the cache anyway.
        "cache_image": hosted,
        "image_cache_key": _CACHE_KEY_UNSAFE.sub("-", f"image-{tag}"),
        # The host gets the image's torch: `harness qualify --bench` measures on the host.
        "torch_version": recipe.build_args.get("TORCH_VERSION", ""),
        "torch_index_url": recipe.build_args.get("TORCH_INDEX_URL", ""),
        "artifact": artifact_name(cell.id),
        # The cell, its image build and (in qualification) the bench.
        "timeout_minutes": int(cell.timeout_s // 60) + 60,
    }


def github_matrix(cells: Iterable[Cell], root: Path) -> dict[str, Any]:
    """`{"include": [...]}` for `strategy.matrix`, one entry per cell in matrix order."""
    entries = [matrix_entry(cell, root) for cell in cells]
    if not entries:
        # GitHub rejects a matrix with no entries with an error that names no cause; say it here.
        raise ConfigurationError("no cell selected, so the GitHub matrix would be empty; check --cell")
    return {"include": entries}


def in_github_actions() -> bool:
    """Whether this process runs in a GitHub Actions job (which reads workflow commands from stdout)."""
    return os.environ.get("GITHUB_ACTIONS") == "true"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(
    kind: AnnotationKind,
    message: str,
    *,
    title: str | None = None,
    file: str | None = None,
    line: int | None = None,
) -> str:
    """A workflow command, e.g. `::error file=a.py,line=3,title=...::message`, escaped as GitHub reads it."""
    properties = []
    if file:
        properties.append(f"file={_escape_property(file)}")
        if line:
            properties.append(f"line={int(line)}")
    if title:
        properties.append(f"title={_escape_property(title)}")
    head = f"::{kind} {','.join(properties)}" if properties else f"::{kind}"
    return f"{head}::{_escape_data(message)}"


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
