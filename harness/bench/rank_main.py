"""A bench rank process: binds its device, joins the process group, runs the sweeps, reports to the parent.

Messages to the parent, over this rank's pipe: ("step", text) before each step (the parent names the step
a rank hangs or fails in), ("row", dict) for each result (rank 0 only: every rank holds the same reduced
figures), ("error", traceback text), and ("done", None).
"""

from __future__ import annotations

import os
import traceback
from datetime import timedelta
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING

from harness.bench.options import DISPATCH_COMBINE, BenchOptions

if TYPE_CHECKING:
    import torch

# NVLink multicast (NVLS) is off on the machines this project qualifies on; set where the caller has not.
CUDA_ENV_DEFAULTS = {
    "NCCL_NVLS_ENABLE": "0",
    "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
    "NVSHMEM_DISABLE_NVLS": "1",
}


class RankDeviceError(RuntimeError):
    """This rank has no device of its own (fewer visible devices than ranks)."""


def run_rank(options: BenchOptions, rank: int, store_path: str, conn: Connection) -> bool:
    """The whole life of rank `rank`; whether it succeeded (an exception goes to the parent as a message)."""
    try:
        _bench(options, rank, store_path, conn)
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        return False
    conn.send(("done", None))
    return True


def _bench(options: BenchOptions, rank: int, store_path: str, conn: Connection) -> None:
    import torch
    import torch.distributed as dist

    from communicators import create_communicator
    from harness.bench.collectives import sweep_collective
    from harness.bench.dispatch_combine import sweep_dispatch_combine
    from harness.bench.timing import DeviceClock

    def announce(step: str) -> None:
        conn.send(("step", step))

    announce("joining the process group")
    device = _bind_device(options, rank)
    if device.type == "cpu" and "OMP_NUM_THREADS" not in os.environ:
        # Ranks share the host's cores: more intra-op threads than cores per rank only thrash.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // options.world_size))
    extra = {"device_id": device} if device.type != "cpu" else {}
    dist.init_process_group(
        options.backend,
        store=dist.FileStore(store_path, options.world_size),
        rank=rank,
        world_size=options.world_size,
        # Longer than the parent's stall timeout: the parent, not a collective, reports a hang.
        timeout=timedelta(seconds=options.timeout_s + 60),
        **extra,
    )
    clock = DeviceClock(device)
    try:
        clock.barrier()
        communicator = create_communicator(device)
        try:
            for op in options.ops:
                if op == DISPATCH_COMBINE:
                    rows = sweep_dispatch_combine(communicator, options, clock, announce)
                else:
                    rows = sweep_collective(op, communicator, options, clock, announce)
                for row in rows:
                    if rank == 0:
                        conn.send(("row", row))
            announce("finishing")
            clock.barrier()
        finally:
            communicator.destroy()
    finally:
        dist.destroy_process_group()


def _bind_device(options: BenchOptions, rank: int) -> torch.device:
    import torch

    if options.device == "cpu":
        return torch.device("cpu")
    if options.device == "cuda":
        for name, value in CUDA_ENV_DEFAULTS.items():
            os.environ.setdefault(name, value)
    # Only ranks touch the accelerator: a parent that initialised it could not fork working ranks.
    accelerator = getattr(torch, options.device)
    visible = accelerator.device_count() if accelerator.is_available() else 0
    if rank >= visible:
        raise RankDeviceError(
            f"rank {rank} needs {options.device} device {rank}, but {visible} are visible here; "
            f"run with --world-size {visible} or fewer"
        )
    accelerator.set_device(rank)
    return torch.device(options.device, rank)
