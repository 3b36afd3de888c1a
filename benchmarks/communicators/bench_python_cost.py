"""Host cost per call of the communicator against raw torch.distributed, with no collective behind either.

On NCCL a collective below a few MiB is host-bound (bench_findings.md): its time is the host time of the
call, and the communicator's overhead is its Python. This script isolates that Python on any machine, GPU
or not: one rank on torch's "fake" process group, whose collectives return at once, times each call the
way the bench's overhead rows compare them (raw calls allocate their output, as the communicator must).

    python benchmarks/communicators/bench_python_cost.py [--calls 20000] [--repeats 7]

Prints the best-of-repeats microseconds per call, side by side, and the difference.
"""

from __future__ import annotations

import argparse
import timeit

import torch
import torch.distributed as dist


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    from torch.testing._internal.distributed.fake_pg import FakeStore

    from communicators.base import DeviceCommunicatorBase
    from communicators.torch_compat import all_gather_single, reduce_scatter_single

    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=2)

    class FakeCommunicator(DeviceCommunicatorBase):
        """The base communicator (the NCCL code path) on the fake group."""

        platform = "cpu"
        process_group_backend = "fake"

    comm = FakeCommunicator("cpu")
    local, full = torch.ones(1024), torch.ones(2048)

    def empty(like: torch.Tensor, count: int) -> torch.Tensor:
        return torch.empty(count, dtype=like.dtype, device=like.device)

    pairs = {
        "all_gather": (
            lambda: all_gather_single(empty(local, 2048), local),
            lambda: comm.all_gather(local, dim=0),
        ),
        "reduce_scatter": (
            lambda: reduce_scatter_single(empty(full, 1024), full),
            lambda: comm.reduce_scatter(full, dim=0),
        ),
        "all_reduce": (lambda: dist.all_reduce(full), lambda: comm.all_reduce(full)),
        "broadcast": (lambda: dist.broadcast(full, src=0), lambda: comm.broadcast(full, src=0)),
    }

    def per_call_us(call) -> float:
        return min(timeit.repeat(call, number=args.calls, repeat=args.repeats)) / args.calls * 1e6

    print(f"{'collective':<16}{'torch.distributed':>20}{'communicator':>15}{'difference':>12}")
    for name, (raw, communicator) in pairs.items():
        # Alternate the two, twice, so that drifting load on a shared machine hits both alike.
        raw_us = min(per_call_us(raw), per_call_us(raw))
        comm_us = min(per_call_us(communicator), per_call_us(communicator))
        print(f"{name:<16}{raw_us:>17.2f} us{comm_us:>12.2f} us{comm_us - raw_us:>+9.2f} us")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
