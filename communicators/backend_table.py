"""The documentation's platform x name table of all2all backends, generated from the table and the rule.

`python -m communicators` prints the block to paste into docs/communicators.md between the markers;
tests/communicators/test_backend_table.py fails when that copy differs from what this renders.
"""

from __future__ import annotations

from communicators.backends import ALL2ALL_BACKENDS, PLATFORMS, All2AllBackendEntry, find_backend_entry
from communicators.errors import (
    All2AllBackendFallbackWarning,
    DeprecatedAll2AllBackendWarning,
    RemovedAll2AllBackendWarning,
)
from communicators.resolution import plan_all2all_backend

BEGIN_MARKER = "<!-- backend-table:begin -->"
END_MARKER = "<!-- backend-table:end -->"


def render_backend_table() -> str:
    """The Markdown table: one row per name, one column per platform saying what the name becomes there."""
    header = ["name", *PLATFORMS, "needs", "manager"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for entry in ALL2ALL_BACKENDS:
        backend = _backend_of(entry)
        cells = [f"`{entry.name}`", *(_platform_cell(platform, entry.name) for platform in PLATFORMS)]
        cells.append(f"`{backend.library}`" if backend and backend.library else "-")
        cells.append(_manager_cell(backend))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_readme_block() -> str:
    """The table between docs/communicators.md's markers, with the legend that explains it."""
    legend = (
        "Each cell is the backend that runs when the name is asked for on that platform "
        "(`communicators.resolve_all2all_backend`). *deprecated*: the name is an alias and warns "
        "(`DeprecatedAll2AllBackendWarning`); *fallback*: the platform has no manager for it, or it was "
        "removed, and `allgather_reducescatter` runs with an `All2AllBackendFallbackWarning`. A backend that "
        "needs a library falls back the same way, with the same warning, where that library is not "
        "installed. Names not in this table raise `ValueError` on every platform. Only "
        "`allgather_reducescatter` has a manager in this package; for the others, `create_communicator` "
        "raises `All2AllManagerUnavailableError` (their managers live in the serving engine).\n"
    )
    return f"{BEGIN_MARKER}\n{render_backend_table()}\n{legend}{END_MARKER}\n"


def _backend_of(entry: All2AllBackendEntry) -> All2AllBackendEntry | None:
    """The backend entry behind a name: itself, an alias's target, or None for a removed name."""
    if entry.kind == "alias":
        return find_backend_entry(entry.target or "")
    return entry if entry.kind == "backend" else None


def _platform_cell(platform: str, name: str) -> str:
    # Libraries count as installed: the table shows the platform's rule; the footnote covers missing ones.
    resolution = plan_all2all_backend(platform, name, is_installed=lambda _module: True)
    categories = {category for category, _message in resolution.warnings}
    tags = []
    if DeprecatedAll2AllBackendWarning in categories:
        tags.append("deprecated")
    if RemovedAll2AllBackendWarning in categories:
        tags.append("removed")
    if any(issubclass(category, All2AllBackendFallbackWarning) for category in categories):
        tags.append("fallback")
    suffix = f" ({', '.join(tags)})" if tags else ""
    return f"`{resolution.backend}`{suffix}"


def _manager_cell(backend: All2AllBackendEntry | None) -> str:
    if backend is None:
        return "-"
    return f"`{backend.manager}`" if backend.manager else "serving engine"
