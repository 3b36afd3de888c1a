"""Bus bandwidth by nccl-tests' formulas, and the bench's option parsing (no ranks)."""

from __future__ import annotations

import pytest

from harness.bench.bandwidth import COLLECTIVES, algbw_gbps, busbw_factor, busbw_gbps
from harness.bench.collectives import uneven_shares
from harness.bench.options import (
    ALL_OPS,
    CPU_QUICK_SIZES,
    GPU_SIZES,
    build_options,
    format_size,
    parse_size,
)
from harness.common.errors import ConfigurationError


@pytest.mark.parametrize("n", [1, 2, 4, 8])
def test_busbw_factors_are_nccl_tests_formulas(n: int) -> None:
    # nccl-tests doc/PERFORMANCE.md: allreduce 2(n-1)/n; allgather, reducescatter, alltoall (n-1)/n; bcast 1
    assert busbw_factor("all_reduce", n) == pytest.approx(2 * (n - 1) / n)
    for op in ("all_gather", "reduce_scatter", "all_to_all", "all_gatherv", "reduce_scatterv"):
        assert busbw_factor(op, n) == pytest.approx((n - 1) / n)
    assert busbw_factor("broadcast", n) == 1.0


def test_busbw_is_algbw_times_factor() -> None:
    # 1 GiB all_reduce in 10 ms on 4 ranks: algbw 107.37 GB/s, busbw 1.5x that.
    nbytes, seconds = 1 << 30, 0.010
    assert algbw_gbps(nbytes, seconds) == pytest.approx(107.374, rel=1e-4)
    assert busbw_gbps("all_reduce", 4, nbytes, seconds) == pytest.approx(161.061, rel=1e-4)
    assert busbw_gbps("all_gather", 4, nbytes, seconds) == pytest.approx(80.530, rel=1e-4)


def test_every_collective_has_a_factor_and_unknown_ops_are_refused() -> None:
    for op in COLLECTIVES:
        assert busbw_factor(op, 4) > 0
    with pytest.raises(ValueError, match="no bus bandwidth factor for 'gather'"):
        busbw_factor("gather", 4)


@pytest.mark.parametrize(
    ("text", "nbytes"),
    [("1K", 1024), ("64k", 65536), ("1M", 1 << 20), ("1G", 1 << 30), ("4096", 4096), ("2MiB", 2 << 20)],
)
def test_sizes_parse_as_powers_of_1024(text: str, nbytes: int) -> None:
    assert parse_size(text) == nbytes


@pytest.mark.parametrize("text", ["", "1X", "-1K", "0", "one"])
def test_bad_sizes_name_the_entry_and_show_an_example(text: str) -> None:
    with pytest.raises(ConfigurationError, match=r"--sizes: .* e\.g\. --sizes 1K,64K,1M"):
        parse_size(text)


def test_format_size_inverts_parse_size() -> None:
    for nbytes in GPU_SIZES:
        assert parse_size(format_size(nbytes)) == nbytes
    assert format_size(1000) == "1000B"


def test_defaults_per_device() -> None:
    cpu = build_options(device="cpu", world_size=4, quick=True)
    assert cpu.sizes == CPU_QUICK_SIZES and cpu.dtype == "float32" and cpu.ops == ALL_OPS
    assert cpu.hidden < 4096  # --quick shrinks the problem on 2 cores; the full run uses 4096
    full = build_options(device="cpu", world_size=4)
    assert full.hidden == 4096 and full.tokens == (64, 512, 4096) and max(full.sizes) == 64 << 20
    gpu = build_options(device="cuda", world_size=2)
    assert gpu.sizes[0] == 1024 and gpu.sizes[-1] == 1 << 30 and gpu.dtype == "bfloat16"
    assert gpu.backend == "nccl" and gpu.dispatch_dtype == "bfloat16"


def test_iterations_scale_down_with_size_on_cpu() -> None:
    options = build_options(device="cpu", world_size=2)
    assert options.iterations_for(1024) == 20
    assert options.iterations_for(64 << 20) == 1
    assert build_options(device="cpu", world_size=2, iters=3).iterations_for(1024) == 3


def test_host_bound_gpu_sizes_get_more_iterations_and_repeats() -> None:
    options = build_options(device="cuda", world_size=2)
    assert options.iterations_for(1024) == 500
    assert options.iterations_for(4 << 20) == 256
    assert options.iterations_for(64 << 20) == 20
    assert options.iterations_for(1 << 30) == 20
    assert options.repeats == 7
    assert build_options(device="cuda", world_size=2, quick=True).repeats == 3


def test_host_bound_gpu_overhead_pairs_take_three_times_the_repeats() -> None:
    # The communicator against raw torch.distributed, judged by each side's best repeat: on a GPU below
    # 16 MiB the best of 7 is not steady enough for the floors' 5 %
    # (benchmarks/harness/overhead_estimators.py).
    options = build_options(device="cuda", world_size=2)
    assert options.repeats_for(1 << 20, with_overhead=True) == 21
    assert options.repeats_for(1 << 20, with_overhead=False) == 7
    assert options.repeats_for(16 << 20, with_overhead=True) == 7
    assert build_options(device="cuda", world_size=2, repeats=2).repeats_for(4096, with_overhead=True) == 6
    assert build_options(device="cpu", world_size=2).repeats_for(1 << 20, with_overhead=True) == 5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ops": "all_reduce,alltoall"}, "--ops: unknown 'alltoall'; choose from all_reduce"),
        ({"world_size": 0}, "--world-size must be 1 or more"),
        ({"tokens": "64,x"}, "--tokens: '64,x' is not a list of positive integers"),
        ({"repeats": 0}, "--repeats must be 1 or more"),
        ({"dtype": "int8"}, "--dtype: unknown 'int8'"),
        ({"timeout_s": 0}, "--timeout must be positive"),
    ],
)
def test_bad_options_are_configuration_errors(kwargs: dict, message: str) -> None:
    arguments = {"device": "cpu", "world_size": 2, **kwargs}
    with pytest.raises(ConfigurationError, match=message):
        build_options(**arguments)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 8])
def test_uneven_shares_grow_with_rank_and_add_up(n: int) -> None:
    shares = uneven_shares(1000, n)
    assert sum(shares) == 1000 and len(shares) == n
    assert shares == sorted(shares)
