"""Creating communicators: device parsing, clear errors, fork safety, and managers that live elsewhere.

Plain pytest tests (no ranks); the one that needs a process group runs it in a subprocess of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from communicators import (
    All2AllManagerUnavailableError,
    CpuCommunicator,
    create_all2all_manager,
    create_communicator,
)
from communicators.tensor_layout import pack_rows, unpack_rows

REPO = Path(__file__).resolve().parents[2]


def test_cpu_communicator_without_a_process_group_says_what_to_do():
    if torch.distributed.is_initialized():
        pytest.skip("a process group already exists in this process")
    with pytest.raises(RuntimeError, match="init_process_group first"):
        create_communicator("cpu")


@pytest.mark.parametrize(
    ("device", "message"), [("meta", "no communicator for device type 'meta'"), ("gpu", "is not a device")]
)
def test_unsupported_device_is_a_clear_value_error(device, message):
    with pytest.raises(ValueError, match=message):
        create_communicator(device)


def test_a_backend_whose_manager_lives_in_the_engine_raises_a_clear_error():
    resolved_on_cuda = SimpleNamespace(all2all_backend="deepep_low_latency", platform="cuda")
    with pytest.raises(All2AllManagerUnavailableError, match="'deepep_low_latency'.*serving engine") as error:
        create_all2all_manager(resolved_on_cuda)
    assert isinstance(error.value, NotImplementedError)


FORK_SAFETY_SCRIPT = textwrap.dedent(
    """
    import torch

    def forbidden(*args, **kwargs):
        raise AssertionError("a device runtime was initialised")

    torch.cuda._lazy_init = forbidden
    if hasattr(torch, "xpu"):
        torch.xpu._lazy_init = forbidden

    import communicators
    import torch.distributed as dist

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    communicator = communicators.create_communicator("cpu", all2all_backend="naive")
    assert isinstance(communicator, communicators.CpuCommunicator)
    hidden = torch.ones(3, 4, dtype=torch.bfloat16)
    ids = torch.zeros(3, 2, dtype=torch.int64)
    gathered = communicator.dispatch(hidden, ids.float(), ids, [3])
    communicator.combine(gathered[0], [3])
    communicator.destroy()
    dist.destroy_process_group()
    assert not torch.cuda.is_initialized()
    print("no device runtime touched")
    """
)


def test_importing_and_using_a_cpu_communicator_never_initialises_cuda_or_xpu():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", FORK_SAFETY_SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "no device runtime touched" in result.stdout


def test_communicator_classes_are_chosen_by_device_type():
    from communicators.factory import COMMUNICATOR_CLASSES

    assert COMMUNICATOR_CLASSES["cpu"] is CpuCommunicator
    assert {cls.platform for cls in COMMUNICATOR_CLASSES.values()} == set(COMMUNICATOR_CLASSES)


def test_byte_packing_round_trips_mixed_dtypes_and_zero_rows():
    # One row: a byte slice of the packed buffer then counts as contiguous at an odd offset.
    for rows in (3, 1, 0):
        tensors = [
            torch.arange(rows * 4, dtype=torch.bfloat16).view(rows, 2, 2),
            torch.arange(rows, dtype=torch.int64) - 5,
            torch.ones(rows, 3, dtype=torch.bool),
            torch.arange(rows * 3, dtype=torch.float32).view(rows, 3)[:, ::2],
            # Rows of no elements (a 0-length trailing dim) between the others: their byte view is 0 wide.
            torch.ones(rows, 2, 0, dtype=torch.float32),
            torch.ones(rows, 0, dtype=torch.int64),
            # One column sliced from a wider buffer: "contiguous" with a last stride of 2.
            torch.arange(rows * 2, dtype=torch.float32).view(rows, 2)[:, ::2],
        ]
        packed, columns = pack_rows(tensors)
        assert packed.dtype == torch.uint8 and packed.shape[0] == rows
        for before, after in zip(tensors, unpack_rows(packed, columns), strict=True):
            assert after.dtype == before.dtype and torch.equal(after, before)
