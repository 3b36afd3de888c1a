"""One forked process per rank for the benchmark scripts (run as `python benchmarks/<script>.py`)."""

from __future__ import annotations

import argparse
import os
import tempfile
import traceback
from collections.abc import Callable

import torch
import torch.distributed as dist


def run_rank_script(description: str, rank_main: Callable[..., None], option: str, default: int) -> None:
    """A multi-rank script's main: --device, --world-size and one integer `--option`, then the forked ranks.

    Calls `rank_main(rank, world_size, device, store_path, value_of_option)` on each rank and exits with
    the worst rank's code.
    """
    parser = rank_arguments(description)
    parser.add_argument(f"--{option}", type=int, default=default)
    args = parser.parse_args()
    value = getattr(args, option.replace("-", "_"))
    raise SystemExit(
        run_forked_ranks(
            args.world_size,
            lambda rank, store_path: rank_main(rank, args.world_size, args.device, store_path, value),
        )
    )


def join_group(rank: int, world_size: int, device_type: str, store_path: str) -> torch.device:
    """This rank's device (GPU `rank` on cuda), with the default process group joined (NCCL or gloo)."""
    if device_type == "cuda":
        torch.cuda.set_device(rank)
    device = torch.device(device_type, rank) if device_type == "cuda" else torch.device("cpu")
    backend = "nccl" if device_type == "cuda" else "gloo"
    store = dist.FileStore(store_path, world_size)
    dist.init_process_group(backend, store=store, rank=rank, world_size=world_size)
    return device


def rank_arguments(description: str) -> argparse.ArgumentParser:
    """A parser with the options every multi-rank script takes: --device and --world-size."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--world-size", type=int, default=2)
    return parser


def run_forked_ranks(world_size: int, rank_main: Callable[[int, str], None]) -> int:
    """Run `rank_main(rank, store_path)` on `world_size` forked processes; the worst exit code.

    A rank that raises prints its traceback and exits 1 (its peers then fail or time out in their next
    collective). NVLink multicast stays off, as the shared GPU hosts require.
    """
    for name in ("NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST", "NVSHMEM_DISABLE_NVLS"):
        os.environ.setdefault(name, "0" if name == "NCCL_NVLS_ENABLE" else "1")
    store_path = os.path.join(tempfile.mkdtemp(), "store")
    pids = []
    for rank in range(world_size):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                rank_main(rank, store_path)
            except BaseException:
                traceback.print_exc()
                code = 1
            # Never return into the parent's code; and NCCL teardown can hang for minutes on these hosts.
            os._exit(code)
        pids.append(pid)
    return max((os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids), key=abs)
