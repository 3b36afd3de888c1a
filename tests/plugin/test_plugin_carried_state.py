"""What reuse mode reads in the pytest process to carry to its workers, or to send a test to fresh ranks."""

from __future__ import annotations

import pytest
import torch

from harness.pytest_plugin.reuse.carried_state import pending_accelerator_seeds
from harness.pytest_plugin.reuse.uncarried import environment_read_at_start


@pytest.fixture
def empty_seed_queue(monkeypatch):
    """torch.cuda's queue of seeds for a CUDA that is not initialised, empty and private to the test."""
    monkeypatch.setattr(torch.cuda, "_lazy_seed_tracker", type(torch.cuda._lazy_seed_tracker)())
    monkeypatch.setattr(torch.cuda, "_is_in_bad_fork", lambda: False)  # never seed a real GPU from here
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)


def test_torch_manual_seed_in_pytest_is_read_as_the_seed_a_fresh_rank_applies(empty_seed_queue):
    assert pending_accelerator_seeds("cuda") == ()
    torch.cuda.manual_seed_all(1234)
    assert pending_accelerator_seeds("cuda") == (("all", 1234),)
    torch.cuda.manual_seed(7)  # the current device only, after the others: torch replays them in this order
    assert pending_accelerator_seeds("cuda") == (("all", 1234), ("current", 7))
    torch.cuda.manual_seed_all(99)
    assert pending_accelerator_seeds("cuda") == (("current", 7), ("all", 99))


def test_a_seed_queued_some_other_way_cannot_be_read(empty_seed_queue):
    torch.cuda._lazy_seed_tracker.queue_seed_all(lambda: None, [])
    assert pending_accelerator_seeds("cuda") is None


def test_cpu_runs_need_no_accelerator_seeds(empty_seed_queue):
    torch.cuda.manual_seed_all(1234)
    assert pending_accelerator_seeds("cpu") == ()


def test_variables_read_when_a_process_group_starts_are_named():
    changed = [
        "PYTEST_CURRENT_TEST",
        "NCCL_ALGO",
        "VLLM_USE_V1",
        "CUDA_VISIBLE_DEVICES",
        "GLOO_SOCKET_IFNAME",
    ]
    assert environment_read_at_start(changed) == ["CUDA_VISIBLE_DEVICES", "GLOO_SOCKET_IFNAME", "NCCL_ALGO"]
