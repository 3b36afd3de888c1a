"""Where the communicator's extra time goes on a host-bound collective: host time per call, back to back.

Forks one rank per GPU (or gloo ranks on CPU) and, at a few sizes, times N back-to-back calls of raw
torch.distributed and of the communicator, with the host clock only (no synchronize inside the loop), then
the same with a synchronize at the end. On NCCL below a few MiB a call is host-bound: the first figure is
what the bench's overhead rows see.

    python benchmarks/communicators/bench_host_overhead.py --device cuda --world-size 2
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

# Run as `python benchmarks/<group>/<script>.py`: the checkout's root, for benchmarks/forked_ranks.py.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.forked_ranks import join_group, run_rank_script  # noqa: E402


def cases_at(mib: int, comm: object, world_size: int, device: torch.device) -> dict[str, object]:
    """The calls compared at `mib` MiB of bf16: raw torch.distributed three ways, then the communicator."""
    from communicators.torch_compat import all_gather_single, reduce_scatter_single

    count = mib * (1 << 20) // 2
    share = count // world_size
    local = torch.ones(share, dtype=torch.bfloat16, device=device)
    full = torch.ones(count, dtype=torch.bfloat16, device=device)
    out_gathered = torch.empty(count, dtype=torch.bfloat16, device=device)
    out_share = torch.empty(share, dtype=torch.bfloat16, device=device)

    def empty(n: int) -> torch.Tensor:
        return torch.empty(n, dtype=torch.bfloat16, device=device)

    group = dist.group.WORLD
    return {
        "ag raw, preallocated": lambda: all_gather_single(out_gathered, local),
        "ag raw, allocating": lambda: all_gather_single(empty(count), local),
        "ag raw, group=WORLD": lambda: all_gather_single(empty(count), local, group=group),
        "ag communicator": lambda: comm.all_gather(local, dim=0),
        "rs raw, preallocated": lambda: reduce_scatter_single(out_share, full),
        "rs raw, allocating": lambda: reduce_scatter_single(empty(share), full),
        "rs communicator": lambda: comm.reduce_scatter(full, dim=0),
    }


def rank_main(rank: int, world_size: int, device_type: str, store_path: str, calls: int) -> None:
    import communicators

    device = join_group(rank, world_size, device_type, store_path)
    comm = communicators.create_communicator(device)

    def sync() -> None:
        if device_type == "cuda":
            torch.cuda.synchronize()

    for mib in (1, 4, 16):
        for name, call in cases_at(mib, comm, world_size, device).items():
            for _ in range(20):
                call()
            sync()
            dist.barrier()
            start = time.perf_counter()
            for _ in range(calls):
                call()
            host = (time.perf_counter() - start) / calls
            sync()
            total = (time.perf_counter() - start) / calls
            if rank == 0:
                print(f"{mib:>3} MiB  {name:<22} host {host * 1e6:8.1f} us  with sync {total * 1e6:8.1f}")
    dist.barrier()


def main() -> None:
    run_rank_script(__doc__, rank_main, "calls", 200)


if __name__ == "__main__":
    main()
