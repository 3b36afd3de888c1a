"""Floors: the file format with file:line errors, and the check of rows against it (no ranks)."""

from __future__ import annotations

from pathlib import Path

import numpy
import pytest

from harness.bench.floors import Floor, check_floors, load_floors, unchecked_floors
from harness.bench.verdict import BenchOutcome, judge_bench, unmeasured_floors
from harness.common.errors import ConfigurationError
from harness.common.untrusted_text import markdown_text
from harness.presentation.bench_markdown import bench_markdown
from harness.results.bench_documents import read_bench_document

FLOORS = """\
version: 1
floors:
  - {device: cuda, world_size: [2, 4], op: all_reduce, min_bytes: 256M, busbw_gbps: 250}
  - {device: cuda, world_size: 4, op: dispatch_combine, min_tokens: 512, speedup_vs_naive: 1.6}
  - {device: cuda, world_size: 4, op: overhead, collective: all_gather, min_bytes: 1M, max_overhead_pct: 5}
  - {device: cpu, world_size: 2, op: broadcast, busbw_gbps: 0.1}
"""


def collective(op: str, nbytes: int, busbw: float, **extra: object) -> dict:
    return {
        "op": op,
        "impl": "communicator",
        "bytes": nbytes,
        "busbw_gbps": busbw,
        "device": "cuda",
        "world_size": 4,
        **extra,
    }


@pytest.fixture
def floors(tmp_path: Path) -> list:
    path = tmp_path / "floors.yaml"
    path.write_text(FLOORS)
    return load_floors(path)


def test_rows_above_every_floor_pass(floors: list) -> None:
    rows = [
        collective("all_reduce", 1 << 30, 330.0),
        collective("all_reduce", 1 << 20, 5.0),  # below min_bytes: not bounded
        {
            "op": "dispatch_combine",
            "tokens": 4096,
            "backend": "allgather_reducescatter",
            "speedup_vs_naive": 2.0,
            "device": "cuda",
            "world_size": 4,
        },
        {
            "op": "dispatch_combine",
            "tokens": 64,
            "backend": "allgather_reducescatter",
            "speedup_vs_naive": 1.1,
            "device": "cuda",
            "world_size": 4,
        },  # below min_tokens
        {
            "op": "overhead",
            "collective": "all_gather",
            "bytes": 1 << 20,
            "overhead_pct": 1.5,
            "device": "cuda",
            "world_size": 4,
        },
    ]
    assert check_floors(rows, floors, "cuda", 4) == []
    assert unchecked_floors(rows, floors, "cuda", 4) == []


def test_each_missed_floor_is_named_with_measured_value_and_source(floors: list, tmp_path: Path) -> None:
    rows = [
        collective("all_reduce", 1 << 30, 120.0),
        collective(
            "all_reduce", 1 << 30, 90.0, impl="torch.distributed", baseline=True
        ),  # baselines not bounded
        {
            "op": "dispatch_combine",
            "tokens": 512,
            "backend": "allgather_reducescatter",
            "speedup_vs_naive": 1.2,
            "device": "cuda",
            "world_size": 4,
        },
        {
            "op": "overhead",
            "collective": "all_gather",
            "bytes": 4 << 20,
            "overhead_pct": 9.0,
            "device": "cuda",
            "world_size": 4,
        },
    ]
    messages = [violation.message() for violation in check_floors(rows, floors, "cuda", 4)]
    source = tmp_path / "floors.yaml"
    assert messages == [
        f"cuda ws4 all_reduce at 1G: busbw_gbps 120 < floor 250 ({source}:3)",
        f"cuda ws4 dispatch_combine at 512 tokens: speedup_vs_naive 1.2 < floor 1.6 ({source}:4)",
        f"cuda ws4 overhead of all_gather at 4M: max_overhead_pct 9 > floor 5 "
        f"(no repeats recorded: judged by the best repeat) ({source}:5)",
    ]


def test_floors_of_other_devices_and_world_sizes_do_not_apply(floors: list) -> None:
    rows = [collective("all_reduce", 1 << 30, 1.0)]
    assert check_floors(rows, floors, "cuda", 8) == []
    assert check_floors(rows, floors, "cpu", 4) == []


def test_floors_without_a_measured_row_are_reported_as_unchecked(floors: list) -> None:
    unchecked = unchecked_floors([collective("all_reduce", 1 << 20, 5.0)], floors, "cuda", 4)
    assert [floor.describe() for floor in unchecked] == [
        "cuda ws2,4 all_reduce >= 256M: busbw_gbps >= 250",
        "cuda ws4 dispatch_combine >= 512 tokens: speedup_vs_naive >= 1.6",
        "cuda ws4 overhead of all_gather >= 1M: max_overhead_pct <= 5",
    ]


def test_unmeasured_floors_are_those_no_bench_document_covers_within_the_expected_cells(floors: list) -> None:
    measured_cuda_ws2 = [BenchOutcome(path=Path("b.json"), device="cuda", world_size=2, rows=[])]
    everywhere = {(floor.device, ws) for floor, ws in unmeasured_floors(floors, measured_cuda_ws2)}
    assert everywhere == {("cuda", 4), ("cpu", 2)}
    # Qualifying only cuda cells at ws 2 and 4: the cpu floor is nobody's business here.
    scoped = unmeasured_floors(floors, measured_cuda_ws2, scope={("cuda", 2), ("cuda", 4)})
    assert {(floor.device, ws) for floor, ws in scoped} == {("cuda", 4)}
    assert len(scoped) == 3  # the three cuda floors that apply at ws4


def test_every_problem_of_a_floors_file_is_listed_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "floors.yaml"
    path.write_text(
        "version: 1\n"
        "floors:\n"
        "  - {device: tpu, world_size: 2, op: all_reduce, busbw_gbps: 1}\n"
        "  - {device: cpu, world_size: 2, op: all_reduce, busbw: 1}\n"
        "  - {device: cpu, world_size: 2, op: overhead, max_overhead_pct: 5}\n"
        "  - {device: cpu, world_size: 0, op: broadcast, busbw_gbps: 1, min_bytes: huge}\n"
    )
    with pytest.raises(ConfigurationError) as error:
        load_floors(path)
    text = str(error.value)
    assert f"{path}:3: floors[0].device: device 'tpu': choose one of cpu, cuda, xpu" in text
    assert f"{path}:4: floors[1].busbw: unknown key 'busbw' (did you mean 'busbw_gbps'?)" in text
    assert f"{path}:5: floors[2]: op overhead needs `collective:`" in text
    assert f"{path}:6: floors[3].world_size: world_size 0" in text
    assert f"{path}:6: floors[3].min_bytes: 'huge': a size such as 1M" in text


def test_a_floors_file_needs_a_version_and_a_list(tmp_path: Path) -> None:
    path = tmp_path / "floors.yaml"
    path.write_text("floors: {}\n")
    with pytest.raises(ConfigurationError, match="a mapping with `version: 1` and a list `floors:`"):
        load_floors(path)
    with pytest.raises(ConfigurationError, match="cannot read the floors file"):
        load_floors(tmp_path / "missing.yaml")


def test_the_committed_floors_file_is_valid() -> None:
    floors = load_floors(Path(__file__).resolve().parents[2] / "floors.yaml")
    assert {floor.device for floor in floors} >= {"cpu", "cuda"}


def test_a_floor_with_shares_bounds_only_rows_of_that_share_pattern(tmp_path: Path) -> None:
    path = tmp_path / "floors.yaml"
    path.write_text(
        "version: 1\nfloors:\n"
        "  - {device: cuda, world_size: 4, op: all_gatherv, shares: mild, min_bytes: 64M, busbw_gbps: 150}\n"
    )
    floors = load_floors(path)
    mild = collective("all_gatherv", 1 << 30, 120.0, shares="mild", max_over_mean=1.2)
    linear = collective("all_gatherv", 1 << 30, 100.0, shares="rank+1", max_over_mean=1.6)
    (violation,) = check_floors([mild, linear], floors, "cuda", 4)
    assert violation.row is mild
    assert "all_gatherv (mild shares) at 1G" in violation.message()
    assert check_floors([linear], floors, "cuda", 4) == []


def test_a_dispatch_floor_on_the_uneven_ratio_bounds_only_the_uneven_rows(tmp_path: Path) -> None:
    path = tmp_path / "floors.yaml"
    path.write_text(
        "version: 1\nfloors:\n"
        "  - {device: cuda, world_size: 2, op: dispatch_combine, max_uneven_over_equal: 1.5}\n"
        "  - {device: cuda, world_size: 2, op: dispatch_combine, speedup_vs_naive: 1.6}\n"
    )
    ratio_floor, speedup_floor = load_floors(path)
    common = {"op": "dispatch_combine", "backend": "allgather_reducescatter", "device": "cuda"}
    common["world_size"] = 2
    equal = {**common, "tokens": 512, "speedup_vs_naive": 3.4}
    uneven = {**common, "tokens": 512, "shares": "mild", "uneven_over_equal": 1.7}
    fine = {**common, "tokens": 64, "shares": "mild", "uneven_over_equal": 1.3}
    (violation,) = check_floors([equal, uneven, fine], [ratio_floor, speedup_floor], "cuda", 2)
    assert violation.row is uneven and violation.measured == 1.7
    assert violation.message() == (
        f"cuda ws2 dispatch_combine (mild shares) at 512 tokens: max_uneven_over_equal 1.7 > floor 1.5 "
        f"({path}:3)"
    )
    assert ratio_floor.describe() == "cuda ws2 dispatch_combine: max_uneven_over_equal <= 1.5"
    assert not speedup_floor.matches(uneven) and not ratio_floor.matches(equal)


def test_a_bound_of_another_op_is_refused_naming_the_ones_it_takes(tmp_path: Path) -> None:
    path = tmp_path / "floors.yaml"
    path.write_text(
        "version: 1\nfloors:\n  - {device: cuda, world_size: 2, op: all_gather, max_uneven_over_equal: 1.5}\n"
    )
    with pytest.raises(ConfigurationError, match="op all_gather takes exactly one bound, busbw_gbps; found"):
        load_floors(path)


def test_the_qualification_report_shows_the_uneven_dispatch_ratio_and_its_floor() -> None:
    # The record of the padded window, judged by today's floors: its uneven round trips (1.87x and 2.12x the
    # equal ones at 64 and 512 tokens) miss the 1.5 bound, and the report says so beside the figures.
    root = Path(__file__).resolve().parents[2]
    record = root / "qualification/2026-11-30-h200-x2-peer-copy/bench-cuda-ws2.json"
    floors = load_floors(root / "floors.yaml")
    outcome = judge_bench(record, read_bench_document(record), floors)
    text = "\n".join(bench_markdown([outcome], floors))
    assert "| cuda | 2 | dispatch_combine, uneven | 64 tokens | 1.87x the equal round trip |" in text
    assert "| cuda | 2 | dispatch_combine, uneven | 4096 tokens | 1.09x the equal round trip |" in text
    missed = [v.message() for v in outcome.violations if v.floor.bound == "max_uneven_over_equal"]
    assert [m.split(":")[0] for m in missed] == [
        "cuda ws2 dispatch_combine (mild shares) at 64 tokens",
        "cuda ws2 dispatch_combine (mild shares) at 512 tokens",
    ]
    # The message quotes the bench document (an artifact, so untrusted): shown as Markdown that cannot render.
    assert all(f"- ❌ floor missed: {markdown_text(m)}" in text for m in missed)


OVERHEAD_FLOOR = Floor(
    device="cuda",
    world_sizes=(2,),
    op="overhead",
    bound="max_overhead_pct",
    value=5.0,
    min_bytes=1 << 20,
    collective="all_gather",
    source="floors.yaml:9",
)


def overhead_rows(seed: int, slower: float, noise: float, bursts: bool, repeats: int = 21) -> list[dict]:
    """A bench's three rows of one overhead pair, with synthetic repeats timed as the bench times them: a
    factor per repeat that hits both sides (the host's load in that repeat), lognormal noise of each side
    and, with `bursts`, a 10-30 % stall in a fifth of each side's repeats; the communicator `slower`."""
    generator = numpy.random.default_rng(seed)
    host = generator.lognormal(0, 0.2, repeats)

    def side(factor: float) -> list[float]:
        times = 100 * factor * host * generator.lognormal(0, noise, repeats)
        if bursts:
            times *= 1 + (generator.random(repeats) < 0.2) * generator.uniform(0.1, 0.3, repeats)
        return [float(time) for time in times]

    mine, torch = side(1 + slower), side(1.0)
    common = {"bytes": 1 << 20, "dtype": "bfloat16", "device": "cuda", "world_size": 2, "repeats": repeats}
    return [
        {"op": "all_gather", "impl": "communicator", **common, "repeats_us": mine},
        {"op": "all_gather", "impl": "torch.distributed", "baseline": True, **common, "repeats_us": torch},
        {
            "op": "overhead",
            "collective": "all_gather",
            **common,
            "overhead_pct": (min(mine) / min(torch) - 1) * 100,
        },
    ]


@pytest.mark.parametrize("noise", [0.03, 0.1])
def test_an_unchanged_path_never_misses_an_overhead_floor_by_chance(noise: float) -> None:
    judged = [overhead_rows(seed, 0.0, noise, bursts=True) for seed in range(200)]
    assert [rows for rows in judged if check_floors(rows, [OVERHEAD_FLOOR], "cuda", 2)] == []
    # The rule of before, each side's best repeat, missed the same floor on the same rows now and then.
    assert sum(rows[2]["overhead_pct"] > 5 for rows in judged) >= 20


def test_a_path_ten_percent_slower_with_tight_noise_misses_the_floor_naming_its_interval() -> None:
    for seed in range(200):
        rows = overhead_rows(seed, 0.10, 0.02, bursts=False)
        (violation,) = check_floors(rows, [OVERHEAD_FLOOR], "cuda", 2)
        low, high = violation.interval
        assert 5 < low < violation.measured < high and violation.repeats == 21
    assert violation.message() == (
        f"cuda ws2 overhead of all_gather at 1M: max_overhead_pct {violation.measured:.3g} > floor 5 "
        f"(median of 21 paired repeats; its 95 % bootstrap interval {low:+.3g} to {high:+.3g} lies above "
        "the floor) (floors.yaml:9)"
    )
    # Seeded by the row: the same document gives the same interval.
    assert check_floors(rows, [OVERHEAD_FLOOR], "cuda", 2)[0].interval == (low, high)


def test_an_overhead_row_whose_twins_kept_no_repeats_is_judged_by_its_best_repeat_and_says_so() -> None:
    rows = overhead_rows(0, 0.0, 0.03, bursts=False)
    rows[2]["overhead_pct"] = 7.0
    assert check_floors(rows, [OVERHEAD_FLOOR], "cuda", 2) == []  # the repeats say: within noise
    for unpaired in ([], [1.0, 2.0], [0.0] * 21):  # none, other counts, a time that cannot be divided by
        rows[1]["repeats_us"] = unpaired
        (violation,) = check_floors(rows, [OVERHEAD_FLOOR], "cuda", 2)
        assert violation.interval is None and violation.measured == 7.0
        assert "(no repeats recorded: judged by the best repeat)" in violation.message()
