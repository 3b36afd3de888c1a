"""Bus bandwidth by nccl-tests' definitions (doc/PERFORMANCE.md there), so figures compare across tools.

algbw = bytes / time. busbw = algbw x factor, where the factor makes busbw comparable to the hardware's link
bandwidth whatever the algorithm: all_reduce 2(n-1)/n; all_gather, reduce_scatter and all_to_all (n-1)/n with
bytes the total (gathered, or scattered) size; broadcast 1. The v-variants move the same total, so they
share their even twin's factor.
"""

from __future__ import annotations

COLLECTIVES: tuple[str, ...] = (
    "all_reduce",
    "all_gather",
    "reduce_scatter",
    "all_to_all",
    "broadcast",
    "all_gatherv",
    "reduce_scatterv",
)


def busbw_factor(op: str, world_size: int) -> float:
    """nccl-tests' bus bandwidth factor of `op` at `world_size` ranks."""
    n = world_size
    if op == "all_reduce":
        return 2 * (n - 1) / n
    if op in ("all_gather", "reduce_scatter", "all_to_all", "all_gatherv", "reduce_scatterv"):
        return (n - 1) / n
    if op == "broadcast":
        return 1.0
    raise ValueError(f"no bus bandwidth factor for {op!r}; collectives: {', '.join(COLLECTIVES)}")


def algbw_gbps(nbytes: int, seconds: float) -> float:
    """Algorithm bandwidth in GB/s (10^9 bytes, as nccl-tests prints it)."""
    return nbytes / seconds / 1e9 if seconds > 0 else 0.0


def busbw_gbps(op: str, world_size: int, nbytes: int, seconds: float) -> float:
    """Bus bandwidth in GB/s."""
    return algbw_gbps(nbytes, seconds) * busbw_factor(op, world_size)
