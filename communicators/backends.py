"""The all2all backend table: every name any platform knows, in one place, as data.

`resolution.resolve_all2all_backend` decides from this table what a (platform, name) pair becomes;
`backend_table.render_backend_table` shows it in docs/communicators.md. Nothing else encodes backend
knowledge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PLATFORMS: tuple[str, ...] = ("cpu", "cuda", "xpu")
DEFAULT_ALL2ALL_BACKEND = "allgather_reducescatter"

EntryKind = Literal["backend", "alias", "removed"]


@dataclass(frozen=True)
class All2AllBackendEntry:
    """One all2all backend name: a backend with a manager, a deprecated alias, or a removed name."""

    name: str
    kind: EntryKind
    # Backends: the platforms that have a manager for it; elsewhere the name falls back to the default.
    platforms: tuple[str, ...] = ()
    # Backends: the Python module it needs (checked with importlib.util.find_spec, never imported).
    library: str | None = None
    # Backends: the class in `communicators.all2all` implementing it; None when its manager lives in the
    # serving engine (vLLM) and this package can only resolve the name.
    manager: str | None = None
    # Aliases: the backend the name stands for.
    target: str | None = None
    note: str = ""


_CUDA_ONLY = ("cuda",)

ALL2ALL_BACKENDS: tuple[All2AllBackendEntry, ...] = (
    All2AllBackendEntry(
        "allgather_reducescatter",
        "backend",
        platforms=PLATFORMS,
        manager="AgRsAll2AllManager",
        note="dispatch all-gathers every rank's tokens, combine reduce-scatters them back",
    ),
    All2AllBackendEntry("deepep_high_throughput", "backend", platforms=_CUDA_ONLY, library="deep_ep"),
    All2AllBackendEntry("deepep_low_latency", "backend", platforms=_CUDA_ONLY, library="deep_ep"),
    All2AllBackendEntry("mori", "backend", platforms=_CUDA_ONLY, library="mori"),
    All2AllBackendEntry("nixl_ep", "backend", platforms=_CUDA_ONLY, library="nixl_ep"),
    All2AllBackendEntry("flashinfer_nvlink_two_sided", "backend", platforms=_CUDA_ONLY, library="flashinfer"),
    All2AllBackendEntry("flashinfer_nvlink_one_sided", "backend", platforms=_CUDA_ONLY, library="flashinfer"),
    All2AllBackendEntry(
        "naive",
        "alias",
        target="allgather_reducescatter",
        note="the broadcast-based naive manager was removed (vLLM PR #33728)",
    ),
    All2AllBackendEntry("flashinfer_all2allv", "alias", target="flashinfer_nvlink_two_sided"),
    All2AllBackendEntry("pplx", "removed", note="pplx-kernels support was removed from vLLM"),
)

_BY_NAME: dict[str, All2AllBackendEntry] = {entry.name: entry for entry in ALL2ALL_BACKENDS}


def find_backend_entry(name: str) -> All2AllBackendEntry | None:
    """The table entry for `name`, or None when no platform knows it."""
    return _BY_NAME.get(name)


def valid_all2all_backend_names() -> list[str]:
    """Every name `resolve_all2all_backend` accepts, in table order."""
    return [entry.name for entry in ALL2ALL_BACKENDS]
