"""Probe: what each all2all backend name becomes in one vLLM release, through the adapter, 2 ranks over gloo.

    PYTHONPATH=. VENV/bin/python qualification/2026-12-07-vllm-backend-names/probe_backend_names.py

Prints, per platform (cpu; xpu and cuda logic emulated) and name: the manager class, the name the EP
communicator reports, and the all2all messages logged on vLLM's "vllm" logger (its own handler, no
propagation), or the error raised.
"""

from __future__ import annotations

import logging
import os
import random
import time
from types import SimpleNamespace

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from harness.adapters.base import TargetPlatform
from harness.adapters.vllm import ADAPTER

NAMES = ("allgather_reducescatter", "naive", "pplx", "deepep_low_latency", "no_such")


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def rank(index: int, world_size: int, port: int, out) -> None:
    from harness.adapters.vllm.communicator import VllmCommunicator

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=index, world_size=world_size)
    collect = Collect()
    logging.getLogger("vllm").addHandler(collect)
    env = SimpleNamespace(
        rank=index, world_size=world_size, group=dist.group.WORLD, device=torch.device("cpu")
    )
    rows = []
    for platform in ("cpu", "xpu", "cuda"):
        for name in NAMES:
            collect.messages.clear()
            target = TargetPlatform(platform, None if platform == "cpu" else "cpu")
            try:
                made = VllmCommunicator(env, target, name)
                manager, backend = made.all2all_manager, made.all2all_backend
                said = [m for m in collect.messages if "all2all" in m.lower() or "naive" in m.lower()]
                rows.append((platform, name, type(manager).__name__, backend, said))
                made.destroy()
            except Exception as error:  # what vLLM raises is the observation
                rows.append((platform, name, "ERR", repr(error)[:300]))
    if index == 0:
        out.put(rows)


if __name__ == "__main__":
    started = time.time()
    ADAPTER.preload()
    print("preload", round(time.time() - started), "s", ADAPTER.version(), flush=True)
    context = mp.get_context("fork")
    queue = context.Queue()
    port = random.randint(20000, 40000)
    ranks = [context.Process(target=rank, args=(r, 2, port, queue)) for r in range(2)]
    for process in ranks:
        process.start()
    for row in queue.get(timeout=600):
        print(row)
    for process in ranks:
        process.join()
