"""One forked process per rank for the benchmark scripts (run as `python benchmarks/<script>.py`)."""

from __future__ import annotations

import argparse
import os
import tempfile
import traceback
from collections.abc import Callable


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
