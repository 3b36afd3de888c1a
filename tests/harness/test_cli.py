"""`harness` as a user runs it: real cells on the local executor, results on disk, exit codes 0/1/2/3/130."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import psutil
import pytest
import torch
from cli_runs import HANGING_TEST, harness_env, run_harness

TINY_MATRIX = """
version: 1
defaults: {tests: [tests/test_tiny.py], timeout: 300, test_timeout: 60}
devices:
  cpu: {world_sizes: [1, 2], required: true, image: {dockerfile: docker/cpu.Dockerfile}}
  xpu: {world_sizes: [1]}
axes: {flavour: [plain]}
"""

FAILING_TEST = """
import torch
import torch.distributed as dist


def test_wrong_sum(dist_env):
    print(f"rank {dist_env.rank} says hello")
    x = torch.ones(1)
    dist.all_reduce(x)
    assert x.item() == 3, f"rank {dist_env.rank}: got {x.item()}"
"""


def test_run_passes_and_writes_every_result_file(project):
    path = project(TINY_MATRIX)
    done = run_harness("run", "matrix.yaml", "--executor", "local", "--out", "out", cwd=path.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    out = path.parent / "out"
    summary = json.loads((out / "summary.json").read_text())
    cells = {c["id"]: c for c in summary["cells"]}
    assert set(cells) == {"cpu-gloo-ws1-plain", "cpu-gloo-ws2-plain", "xpu-xccl-ws1-plain"}
    for cell_id in ("cpu-gloo-ws1-plain", "cpu-gloo-ws2-plain"):
        cell = cells[cell_id]
        assert cell["status"] == "passed" and cell["executor"] == "local"
        assert cell["counts"] == {
            **{"passed": 3, "failed": 0, "skipped": 0, "errors": 0, "not_run": 0},
            **{"flaky": 0, "quarantined": 0, "known_gaps": 0},
        }
        for name in (
            "junit.xml",
            "log.txt",
            "fingerprint.json",
            "cell.json",
            "progress.jsonl",
            "result.json",
        ):
            assert (out / cell_id / name).is_file(), name
        assert cell["fingerprint"]["torch"] == torch.__version__ and cell["fingerprint"]["cell"] == cell_id
    assert cells["xpu-xccl-ws1-plain"]["status"] == "skipped"
    assert cells["xpu-xccl-ws1-plain"]["reason"] == "no Intel GPU on this host"
    assert summary["exit_code"] == 0 and summary["host"]["cores"] >= 1 and summary["pending"] == []
    suites = [s.get("name") for s in ET.parse(out / "junit.xml").getroot()]
    assert suites == ["cpu-gloo-ws1-plain", "cpu-gloo-ws2-plain", "xpu-xccl-ws1-plain"]
    # Plain progress lines (CI=true): per test with its counter, per finished cell, then the table and path.
    assert "[cpu-gloo-ws2-plain] 1/3 tests/test_tiny.py::test_all_reduce_sums_ranks PASSED" in done.stdout
    assert "[cpu-gloo-ws2-plain] PASSED: 3 passed in " in done.stdout
    assert "[xpu-xccl-ws1-plain] skipped: no Intel GPU on this host" in done.stdout
    assert f"Results: {out}" in done.stdout
    # Below the final table too, where a reader of the end of the output looks.
    tail = done.stdout[done.stdout.index("comm-harness results") :]
    assert "skipped xpu-xccl-ws1-plain: no Intel GPU on this host" in tail
    log = (out / "cpu-gloo-ws2-plain" / "log.txt").read_text()
    assert "--dist-world-size 2" in log and "3 passed" in log


def test_a_failing_test_exits_1_and_the_summary_shows_it(project):
    # With `-s` beside the default `--forked`: the ranks' prints must still reach the cell's log.
    path = project(
        TINY_MATRIX.replace("tests/test_tiny.py", "tests/test_failing.py").replace(
            "test_timeout: 60}", "test_timeout: 60, pytest_args: [--forked, -s]}"
        )
    )
    (path.parent / "tests" / "test_failing.py").write_text(FAILING_TEST)
    done = run_harness("run", "--cell", "cpu-gloo-ws2-*", "--out", "out", cwd=path.parent)
    assert done.returncode == 1, done.stdout + done.stderr
    summary = json.loads((path.parent / "out" / "summary.json").read_text())
    assert [(c["id"], c["status"], c["counts"]["failed"]) for c in summary["cells"]] == [
        ("cpu-gloo-ws2-plain", "failed", 1)
    ]
    markdown = (path.parent / "out" / "summary.md").read_text()
    assert "test_wrong_sum" in markdown and "got 2.0" in markdown
    # The plain output says which ranks failed and why, as the test fails and again at the end.
    live = [line for line in done.stdout.splitlines() if "test_wrong_sum FAILED" in line]
    assert len(live) == 1 and "[ranks 0, 1 of 2]: " in live[0] and "got 2.0" in live[0], done.stdout
    final = [line for line in done.stdout.splitlines() if line.startswith("FAILED cpu-gloo-ws2-plain")]
    assert len(final) == 1 and "test_wrong_sum [ranks 0, 1 of 2]: " in final[0], done.stdout
    assert "full log: out/cpu-gloo-ws2-plain/log.txt" in done.stdout
    log = (path.parent / "out" / "cpu-gloo-ws2-plain" / "log.txt").read_text()
    assert "rank 0 says hello" in log and "rank 1 says hello" in log, log


@pytest.mark.e2e
def test_strict_exits_3_and_a_run_where_nothing_ran_5(project):
    path = project(TINY_MATRIX.replace("xpu: {world_sizes: [1]}", "xpu: {world_sizes: [1], required: true}"))
    done = run_harness("run", "--cell", "xpu-*", "--strict", "--out", "out", cwd=path.parent)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "required cells did not run or errored: xpu-xccl-ws1-plain" in done.stdout
    # Without --strict a run in which no test executed is still not green: exit 5, as pytest's, and why.
    relaxed = run_harness("run", "--cell", "xpu-*", "--out", "out", cwd=path.parent)
    assert relaxed.returncode == 5, relaxed.stdout + relaxed.stderr
    assert "no test ran: every cell was skipped (no Intel GPU on this host)" in relaxed.stdout
    report = run_harness("report", "out", cwd=path.parent)
    assert report.returncode == 5 and "no test ran: every cell was skipped" in report.stdout


def test_configuration_errors_exit_2_with_the_place_and_no_traceback(project):
    path = project(TINY_MATRIX.replace("world_sizes: [1, 2]", "world_sizes: [1, -2]"))
    done = run_harness("plan", "matrix.yaml", cwd=path.parent)
    assert done.returncode == 2
    assert "matrix.yaml:4: devices.cpu.world_sizes[1]: -2 is too small: must be at least 1" in done.stderr
    assert "Traceback" not in done.stderr
    good = project(TINY_MATRIX, name="good.yaml")
    unknown = run_harness("run", str(good), "--cell", "cpu-gloo-ws3*", cwd=path.parent)
    assert (
        unknown.returncode == 2
        and "cpu-gloo-ws1-plain" in unknown.stderr
        and "Traceback" not in unknown.stderr
    )
    docker = run_harness("plan", str(good), "--executor", "docker", cwd=path.parent)
    assert docker.returncode in (0, 2) and "Traceback" not in docker.stderr


def test_plan_json_and_doctor_json(project):
    path = project(TINY_MATRIX)
    done = run_harness("plan", "--json", "--executor", "local", cwd=path.parent)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    fates = {c["id"]: (c["executor"], c["reason"]) for c in plan["cells"]}
    assert fates["cpu-gloo-ws2-plain"] == ("local", "on the host")
    assert fates["xpu-xccl-ws1-plain"] == (None, "no Intel GPU on this host")
    doctor = run_harness("doctor", "--json", cwd=path.parent)
    host = json.loads(doctor.stdout)
    assert doctor.returncode == 0 and host["cores"] >= 1 and host["torch"]["gloo_available"] is True


def pids_in(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def assert_all_gone(pids: list[int]) -> None:
    for pid in pids:
        try:
            assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, (
                f"rank process {pid} outlived its cell"
            )
        except psutil.NoSuchProcess:
            pass


def hanging_project(project, timeout: int) -> Path:
    path = project(
        TINY_MATRIX.replace("tests/test_tiny.py", "tests/test_hangs.py").replace(
            "timeout: 300", f"timeout: {timeout}"
        )
    )
    (path.parent / "tests" / "test_hangs.py").write_text(HANGING_TEST)
    return path


@pytest.mark.e2e
def test_a_cell_past_its_timeout_is_killed_with_its_ranks(project, monkeypatch):
    path = hanging_project(project, timeout=20)
    pid_file = path.parent / "pids.txt"
    monkeypatch.setenv("PID_FILE", str(pid_file))
    done = run_harness("run", "--cell", "cpu-gloo-ws2-*", "--out", "out", cwd=path.parent)
    assert done.returncode == 1, done.stdout + done.stderr
    cell = json.loads((path.parent / "out" / "summary.json").read_text())["cells"][0]
    assert cell["status"] == "error"
    assert cell["reason"].startswith(
        "cell timed out after 20s in tests/test_hangs.py::test_hangs: ranks 0, 1 of 2 still running"
    )
    assert "(0 of 1 tests finished, 1 not run)" in cell["reason"]
    assert cell["counts"]["not_run"] == 1
    assert len(pids_in(pid_file)) == 2
    assert_all_gone(pids_in(pid_file))


@pytest.mark.e2e
def test_ctrl_c_stops_the_running_cells_and_writes_the_summary(project):
    path = hanging_project(project, timeout=300)
    pid_file = path.parent / "pids.txt"
    harness = subprocess.Popen(
        [sys.executable, "-m", "harness.commands.cli", "run", "--cell", "cpu-*", "--out", "out"],
        cwd=path.parent,
        env=harness_env(PID_FILE=str(pid_file)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while len(pids_in(pid_file)) < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert pids_in(pid_file), "no rank started"
        harness.send_signal(signal.SIGINT)
        output, _ = harness.communicate(timeout=120)
    finally:
        if harness.poll() is None:
            harness.kill()
    assert harness.returncode == 130, output
    summary = json.loads((path.parent / "out" / "summary.json").read_text())
    statuses = {c["id"]: (c["status"], c["reason"]) for c in summary["cells"]}
    status, reason = statuses["cpu-gloo-ws1-plain"]
    assert (status, reason.splitlines()[0]) == (
        "error",
        "interrupted in tests/test_hangs.py::test_hangs: rank 0 of 1 still running, in tests/test_hangs.py:9 "
        "test_hangs (0 of 1 tests finished, 1 not run)",
    )
    assert statuses["cpu-gloo-ws2-plain"] == ("error", "not run: the run was interrupted")
    assert summary["exit_code"] == 130
    assert_all_gone(pids_in(pid_file))
