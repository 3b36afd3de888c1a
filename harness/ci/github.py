"""GitHub Actions: the `strategy.matrix` JSON that fans the cells out.

The cells of matrix.yaml are the single source of truth (as cibuildwheel's build identifiers are): the plan
job prints `github_matrix(...)` into $GITHUB_OUTPUT and every cell job reads its entry back by `fromJSON`.
The jobs themselves are written in .github/workflows/ci.yml; they run what `CellJob` says.
"""

from __future__ import annotations

import re
from typing import Any

from harness.ci.cell_jobs import CellJob, no_place_to_run

SELF_HOSTED = "self-hosted"
_CACHE_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def matrix_entry(job: CellJob) -> dict[str, Any]:
    """One `include` entry: what a cell job needs to pick its runner, load its image and run the cell."""
    cell = job.cell
    runs_on: list[str] = cell.ci_placement.get("runs_on", [])
    if not runs_on:
        hint = "e.g. [ubuntu-latest] for cpu, [self-hosted, linux, gpu-nvidia] for cuda"
        raise no_place_to_run(cell, "runner labels", "runs_on: [...]", hint)
    hosted = SELF_HOSTED not in runs_on
    return {
        "cell": cell.id,
        "runs-on": list(runs_on),
        "device": cell.device,
        "backend": cell.backend,
        "world_size": cell.world_size,
        "required": cell.required,
        "params": dict(cell.params),
        "image": job.image,
        # GitHub-hosted runners start empty: their job caches the image as a tarball. A self-hosted
        # runner keeps its images in its own engine, and a GPU image would not fit the cache anyway.
        "cache_image": hosted,
        "image_cache_key": _CACHE_KEY_UNSAFE.sub("-", f"image-{job.image}"),
        # The host gets the image's torch: `harness qualify --bench` measures on the host.
        "torch_version": job.torch_version,
        "torch_index_url": job.torch_index_url,
        # `pip install` arguments, one set a line: the harness (matrix.yaml's `harness:`), then the project.
        "install": "\n".join(job.installs),
        "artifact": job.artifact,
        "timeout_minutes": job.timeout_minutes,
    }


def github_matrix(jobs: list[CellJob]) -> dict[str, Any]:
    """`{"include": [...]}` for `strategy.matrix`, one entry per cell job in matrix order."""
    return {"include": [matrix_entry(job) for job in jobs]}
