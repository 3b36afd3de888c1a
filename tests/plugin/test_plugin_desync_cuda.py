"""The desync scenarios on NCCL ranks (2 GPUs or more): the verdict names the rank and the call there too.

On NCCL a collective returns once enqueued, so a rank that went astray is seen by its calls' order and
signatures, not by where its host thread waits; and reordered or mismatched calls may hang on the GPU or pass
with wrong data, which is why those are run with --dist-check-collectives.
"""

from __future__ import annotations

import pytest
import torch
from test_plugin_desync import SCENARIO_MODULE, SCENARIOS, run_scenarios

from harness.pytest_plugin.desync.desync_verdict import describe_ranks

# Counting here is harmless: this pytest only starts the one under test, whose ranks use the GPUs.
GPUS = torch.cuda.device_count()
pytestmark = pytest.mark.skipif(GPUS < 2, reason=f"needs 2 CUDA devices; {GPUS} visible")

NCCL = ("--dist-device=cuda", "--dist-world-size=2")


def test_nccl_ranks_out_of_step_are_named(tmp_path):
    # Only the cases that must hang on NCCL: rank 0's extra all_gather (skip) and all_reduce #2 (hang) never
    # meet a partner. Reordered or mismatched calls may pass on NCCL with wrong data: see the checked run.
    run = run_scenarios(tmp_path, *NCCL, "--dist-timeout=20", "-k", "skips or hangs", timeout=400)
    lines = SCENARIOS.read_text().splitlines()
    sleep_line = next(number for number, line in enumerate(lines, 1) if "sleep(600)" in line)
    skip = run.messages["test_skips_a_collective"]
    # The odd rank's call returned once enqueued: it is past it, in Python or out of the test body.
    assert skip.splitlines()[0].startswith(
        "desync: rank 1 never entered all_reduce #3 of group WORLD (rank 0 "
    ), skip
    assert "rank 1 called all_gather_single #3 instead; " in skip.splitlines()[0], skip
    hang = run.messages["test_hangs_outside_any_collective"]
    assert hang.splitlines()[0].startswith(
        f"rank 1 is not in a collective: it is in {SCENARIO_MODULE}:{sleep_line} "
        "test_hangs_outside_any_collective (rank 0 "
    ), hang


def test_nccl_mismatches_fail_at_once_when_checked(tmp_path):
    run = run_scenarios(
        tmp_path,
        *NCCL,
        "--dist-reuse=off",
        "--dist-timeout=120",
        "--dist-check-collectives",
        "-k",
        "not hangs",
        timeout=600,
    )
    odd, others = 1, describe_ranks([0])
    assert run.messages["test_passes_another_shape"].splitlines()[0] == (
        f"mismatch: all_reduce #2: rank {odd} passed float32[8, 4], {others} passed float32[8, 8]"
    )
    assert run.messages["test_passes_another_dtype"].splitlines()[0] == (
        f"mismatch: all_reduce #2: rank {odd} passed float64[8, 8], {others} passed float32[8, 8]"
    )
    for name, seq in (("test_skips_a_collective", 3), ("test_reorders_two_collectives", 2)):
        assert (
            run.messages[name]
            .splitlines()[0]
            .startswith(f"desync: rank 1 never entered all_reduce #{seq} of group WORLD")
        ), run.messages[name]
    for name in run.messages:
        assert "--dist-timeout" not in run.messages[name], (name, run.messages[name])
