"""A real, tiny CPU bench: forked gloo ranks at world size 2, checked rows, the JSON document, exit codes.

Sizes and iterations are the smallest that exercise every path; nothing here asserts on a time.
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import time
from pathlib import Path

import jsonschema
import pytest

import harness.bench.collectives as collectives
from harness.bench.bandwidth import COLLECTIVES, busbw_factor
from harness.bench.options import ALL_OPS
from harness.bench.results import DOCUMENT_SCHEMA
from harness.commands.cli import main as harness_main
from harness.common.errors import EXIT_CONFIG, EXIT_OK, EXIT_TEST_FAILURES

TINY = ["--world-size", "2", "--warmup", "0", "--iters", "1", "--repeats", "1", "--timeout", "60"]


def main(argv: list[str]) -> int:
    """`harness bench ARGV`'s exit code."""
    return harness_main(["bench", *argv])


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One bench of every op at two sizes, with dispatch+combine at a small hidden size."""
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    plot = path.with_suffix(".png")
    code = main(
        [
            *TINY,
            "--sizes",
            "1K,4K",
            "--tokens",
            "8,24",
            "--hidden",
            "64",
            "--json",
            str(path),
            "--plot",
            str(plot),
        ]
    )
    assert code == EXIT_OK
    assert plot.stat().st_size > 10_000  # a real PNG was drawn
    return json.loads(path.read_text())


def test_the_document_matches_its_schema(document: dict) -> None:
    jsonschema.validate(document, DOCUMENT_SCHEMA)
    assert document["settings"]["world_size"] == 2
    assert document["environment"]["torch"]  # the fingerprint of harness/host/fingerprint.py


def test_every_collective_has_a_checked_row_per_size(document: dict) -> None:
    rows = [r for r in document["rows"] if r["op"] in COLLECTIVES and not r.get("baseline")]
    assert sorted({(r["op"], r["bytes"]) for r in rows}) == sorted(
        (op, size) for op in COLLECTIVES for size in (1024, 4096)
    )
    assert all(r["correct"] and r["incorrect_ranks"] == [] for r in rows)
    for row in rows:
        assert row["busbw_gbps"] == pytest.approx(row["algbw_gbps"] * busbw_factor(row["op"], 2))
        assert row["algbw_gbps"] == pytest.approx(row["bytes"] / (row["time_us"] * 1e-6) / 1e9)
    # The communicator has no all_to_all: that row is torch.distributed's and says so.
    assert {r["impl"] for r in rows if r["op"] == "all_to_all"} == {"torch.distributed"}


def test_overhead_rows_pair_the_communicator_with_raw_torch(document: dict) -> None:
    overhead = [r for r in document["rows"] if r["op"] == "overhead"]
    assert {r["collective"] for r in overhead} == {"all_reduce", "all_gather", "reduce_scatter", "broadcast"}
    for row in overhead:
        # Judged on the best repeats; the medians are kept beside them.
        assert row["overhead_pct"] == pytest.approx(
            (row["communicator_best_us"] / row["torch_best_us"] - 1) * 100
        )
        assert row["overhead_median_pct"] == pytest.approx(
            (row["communicator_us"] / row["torch_us"] - 1) * 100
        )
        assert (
            row["communicator_best_us"] <= row["communicator_us"] and row["torch_best_us"] <= row["torch_us"]
        )


def test_dispatch_combine_compares_agrs_with_the_naive_reference(document: dict) -> None:
    every_row = [r for r in document["rows"] if r["op"] == "dispatch_combine"]
    assert [(r["tokens"], r["backend"], r.get("shares")) for r in every_row] == [
        (8, "allgather_reducescatter", None),
        (8, "naive_reference", None),
        (8, "allgather_reducescatter", "mild"),
        (24, "allgather_reducescatter", None),
        (24, "naive_reference", None),
        (24, "allgather_reducescatter", "mild"),
    ]
    # The third row per token count: the backend at uneven token counts of the same total, against equal.
    for equal, uneven in zip(every_row[::3], every_row[2::3], strict=True):
        assert uneven["correct"] and sum(uneven["sizes"]) == equal["tokens"] * equal["world_size"]
        assert uneven["uneven_over_equal"] == pytest.approx(uneven["time_best_us"] / equal["time_best_us"])
        assert "speedup_vs_naive" not in uneven
    rows = [r for r in every_row if not r.get("shares")]
    # correct: each scheme matched the expected tensors and the two schemes' outputs were identical.
    assert all(r["correct"] and r["hidden"] == 64 and r["topk"] == 8 for r in rows)
    for agrs, naive in zip(rows[::2], rows[1::2], strict=True):
        # Judged on best repeats; the ratio of the medians (time_us) is kept beside it.
        assert agrs["speedup_vs_naive_median"] == pytest.approx(naive["time_us"] / agrs["time_us"])
        assert agrs["speedup_vs_naive"] == pytest.approx(naive["time_best_us"] / agrs["time_best_us"])
        assert agrs["time_best_us"] <= agrs["time_us"] and naive["time_best_us"] <= naive["time_us"]
        # The round trip is timed back to back; the per-phase split is a separate, synchronised pass.
        for row in (agrs, naive):
            assert row["time_us"] > 0 and row["dispatch_us"] > 0 and row["combine_us"] > 0


def test_every_repeat_is_kept_beside_its_median_and_best(tmp_path: Path) -> None:
    """`harness compare` resamples the repeats: each timed row keeps them all; its figures come from them."""
    path = tmp_path / "bench.json"
    options = ["--ops", "all_reduce,dispatch_combine", "--sizes", "1K", "--tokens", "8", "--hidden", "64"]
    assert main([*TINY, "--repeats", "3", *options, "--json", str(path)]) == EXIT_OK
    rows = json.loads(path.read_text())["rows"]
    timed = [row for row in rows if row["op"] != "overhead"]
    # The communicator's all_reduce, its torch.distributed twin, and dispatch+combine's three schemes.
    assert len(timed) == 5
    for row in timed:
        assert len(row["repeats_us"]) == row["repeats"] == 3
        assert row["time_us"] == pytest.approx(statistics.median(row["repeats_us"]), abs=1e-3)
        if "time_best_us" in row:
            assert row["time_best_us"] == pytest.approx(min(row["repeats_us"]), abs=1e-3)
    [overhead] = [row for row in rows if row["op"] == "overhead"]
    for key, impl in (("communicator_best_us", "communicator"), ("torch_best_us", "torch.distributed")):
        [row] = [row for row in rows if row["op"] == "all_reduce" and row["impl"] == impl]
        assert overhead[key] == pytest.approx(min(row["repeats_us"]), abs=1e-3)


def test_a_wrong_result_is_flagged_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys, tmp_path: Path
) -> None:
    # Ranks are forked: the patched collective is what they run. Rank 1 returns a wrong gather.
    real_build_case = collectives.build_case

    def broken_build_case(op, nbytes, communicator, dtype):
        case = real_build_case(op, nbytes, communicator, dtype)
        if communicator.rank == 1:
            real_check = case.check  # still run the collective: rank 0 is waiting in it
            case.check = lambda: real_check() and False
        return case

    monkeypatch.setattr(collectives, "build_case", broken_build_case)
    path = tmp_path / "bench.json"
    code = main([*TINY, "--ops", "all_gather", "--sizes", "1K", "--json", str(path)])
    assert code == EXIT_TEST_FAILURES
    assert "WRONG: all_gather at 1K: wrong result on rank(s) 1" in capsys.readouterr().err
    (row,) = [
        r for r in json.loads(path.read_text())["rows"] if r["op"] == "all_gather" and not r.get("baseline")
    ]
    assert row["correct"] is False and row["incorrect_ranks"] == [1]


def test_a_missed_floor_exits_1_naming_it(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    floors = tmp_path / "floors.yaml"
    floors.write_text(
        "version: 1\nfloors:\n  - {device: cpu, world_size: 2, op: broadcast, busbw_gbps: 1000000000}\n"
    )
    code = main([*TINY, "--ops", "broadcast", "--sizes", "1K", "--no-overhead", "--floors", str(floors)])
    assert code == EXIT_TEST_FAILURES
    output = capsys.readouterr()
    assert "FLOOR: cpu ws2 broadcast at 1K: busbw_gbps" in output.err
    # Without --json the figures still land somewhere, named on the last line: results/, which git ignores.
    last = output.out.strip().splitlines()[-1]
    assert last.startswith("harness bench: results in results/bench-cpu-ws2-")
    assert json.loads((tmp_path / last.split(" results in ")[1]).read_text())["rows"]
    floors.write_text("version: 1\nfloors:\n  - {device: cpu, world_size: 2, op: broadcast, busbw_gbps: 0}\n")
    assert main([*TINY, "--ops", "broadcast", "--sizes", "1K", "--no-overhead", "--floors", str(floors)]) == 0


def test_a_rank_that_raises_ends_the_bench_naming_rank_and_step(
    monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    def failing_build_case(op, nbytes, communicator, dtype):
        if communicator.rank == 1:
            raise RuntimeError("injected failure")
        return collectives.CollectiveCase(op, 1, lambda: None, None, lambda: True)

    monkeypatch.setattr(collectives, "build_case", failing_build_case)
    code = main([*TINY, "--ops", "all_reduce", "--sizes", "1K"])
    assert code == EXIT_TEST_FAILURES
    err = capsys.readouterr().err
    assert "rank 1 failed during step 'all_reduce 1024 bytes': RuntimeError: injected failure" in err
    assert "Traceback" in err  # the rank's own traceback, for the cause


def test_a_hanging_rank_times_out_naming_it(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    def hanging_build_case(op, nbytes, communicator, dtype):
        if communicator.rank == 1:
            time.sleep(600)
        return collectives.CollectiveCase(op, 1, lambda: None, None, lambda: True)

    monkeypatch.setattr(collectives, "build_case", hanging_build_case)
    started = time.monotonic()
    code = main([*TINY[:-2], "--timeout", "2", "--ops", "all_reduce", "--sizes", "1K"])
    assert code == EXIT_TEST_FAILURES
    assert time.monotonic() - started < 60  # killed, not waited for
    err = capsys.readouterr().err
    assert "no rank made progress for 2 s (--timeout)" in err
    assert "rank 1: all_reduce 1024 bytes" in err


def test_a_rank_killed_by_a_signal_is_reported(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    def dying_build_case(op, nbytes, communicator, dtype):
        if communicator.rank == 0:
            os.kill(os.getpid(), signal.SIGKILL)
        return collectives.CollectiveCase(op, 1, lambda: None, None, lambda: True)

    monkeypatch.setattr(collectives, "build_case", dying_build_case)
    assert main([*TINY, "--ops", "all_reduce", "--sizes", "1K"]) == EXIT_TEST_FAILURES
    assert "rank 0 was killed by signal 9 during step 'all_reduce 1024 bytes'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--sizes", "1K,2Q"], "--sizes: '2Q' is not a size"),
        (["--ops", "gather"], f"--ops: unknown 'gather'; choose from {', '.join(ALL_OPS)}"),
        (["--floors", "/nonexistent/floors.yaml"], "cannot read the floors file"),
    ],
)
def test_bad_options_exit_2_with_a_message(argv: list[str], message: str, capsys) -> None:
    assert main(argv) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_harness_cli_has_the_bench_command(capsys) -> None:
    assert harness_main(["bench", "--sizes", "bad"]) == EXIT_CONFIG
    assert "harness bench: error: --sizes: 'bad' is not a size" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        (
            None,
            "--world-size 4 needs one GPU per rank; 2 visible: run with --world-size 2 or fewer",
        ),
        (
            "1",
            "needs one GPU per rank; 1 visible (CUDA_VISIBLE_DEVICES='1'): run with --world-size 1 or fewer",
        ),
    ],
)
def test_too_few_gpus_is_a_configuration_error_found_without_cuda(
    monkeypatch: pytest.MonkeyPatch, mask: str | None, message: str
) -> None:
    import torch.distributed as dist

    import harness.bench.runner as runner
    from harness.bench.options import build_options
    from harness.common.errors import ConfigurationError
    from harness.host.fingerprint import NvidiaGpu

    # nvidia-smi, not CUDA, counts the GPUs: the parent must stay fork-safe.
    gpus = [NvidiaGpu(i, "NVIDIA H200", "570.00", "143771 MiB") for i in range(2)]
    monkeypatch.setattr(runner, "query_nvidia_gpus", lambda: (gpus, ""))
    monkeypatch.setattr(dist, "is_nccl_available", lambda: True)
    if mask is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", mask)
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        runner.check_devices(build_options(device="cuda", world_size=4))


def test_a_torch_without_the_backend_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import torch.distributed as dist

    monkeypatch.setattr(dist, "is_nccl_available", lambda: False)
    assert main(["--device", "cuda", "--world-size", "2"]) == EXIT_CONFIG
    assert "--device cuda needs torch.distributed's nccl backend" in capsys.readouterr().err
