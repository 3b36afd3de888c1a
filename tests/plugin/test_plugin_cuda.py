"""The CUDA path on real GPUs: NCCL ranks in fork and reuse mode; runs only where 2 or more GPUs are seen."""

from __future__ import annotations

import pytest
import torch
from plugin_runs import run_pytest_in

# Counting here is harmless: this pytest only starts the one under test, whose ranks use the GPUs.
GPUS = torch.cuda.device_count()
pytestmark = pytest.mark.skipif(GPUS < 2, reason=f"needs 2 CUDA devices; {GPUS} visible")

CUDA_SCENARIOS = """
import os, time
import torch, torch.distributed as dist


def record(name, rank):
    with open(os.environ["COMM_HARNESS_TEST_RECORD"], "a") as f:
        f.write(f"{name} {rank} {os.getpid()}\\n")


def all_reduce(dist_env):
    t = torch.ones(1 << 20, device=dist_env.device) * (dist_env.rank + 1)
    dist.all_reduce(t, group=dist_env.group)
    assert t[0].item() == sum(range(1, dist_env.world_size + 1))


def test_all_reduce(dist_env):
    record("test_all_reduce", dist_env.rank)
    assert (dist_env.backend, dist_env.device) == ("nccl", torch.device("cuda", dist_env.rank))
    assert torch.cuda.current_device() == dist_env.rank
    all_reduce(dist_env)


def test_again(dist_env):
    record("test_again", dist_env.rank)
    all_reduce(dist_env)


def test_fails_on_last_rank(dist_env):
    assert dist_env.rank != dist_env.world_size - 1, "last rank disagrees"


def test_after_failure(dist_env):
    record("test_after_failure", dist_env.rank)
    all_reduce(dist_env)


def test_hang(dist_env):
    if dist_env.rank == 0:
        time.sleep(600)
    dist.barrier()


def test_after_hang(dist_env):
    all_reduce(dist_env)


def test_pytest_process_never_initialised_cuda():
    assert not torch.cuda.is_initialized()
"""


@pytest.mark.parametrize("reuse", ["auto", "off"])
def test_nccl_ranks(tmp_path, reuse):
    world_size = min(GPUS, 4)
    (tmp_path / "test_cuda_scenarios.py").write_text(CUDA_SCENARIOS)
    run = run_pytest_in(
        tmp_path,
        "--dist-device=cuda",
        f"--dist-world-size={world_size}",
        f"--dist-reuse={reuse}",
        "--dist-timeout=30",
        timeout=300,
    )
    last = world_size - 1
    for name in ("test_all_reduce", "test_again", "test_after_failure", "test_after_hang"):
        assert run.outcomes[name] == "passed", (name, run.messages.get(name), run.output)
    assert run.outcomes["test_pytest_process_never_initialised_cuda"] == "passed"
    assert f"rank {last} of {world_size} failed" in run.messages["test_fails_on_last_rank"]
    assert "last rank disagrees" in run.messages["test_fails_on_last_rank"]
    assert "timed out after 30 s (--dist-timeout)" in run.messages["test_hang"]
    assert "in test_hang" in run.messages["test_hang"]
    workers = run.pids["test_all_reduce"]
    if reuse == "auto":  # on for cuda: the same workers until the failure, new ones after it
        assert run.pids["test_again"] == workers
        assert set(run.pids["test_after_failure"].values()).isdisjoint(workers.values())
    else:
        assert set(run.pids["test_again"].values()).isdisjoint(workers.values())
