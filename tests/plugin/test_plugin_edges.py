"""The plugin at its edges: pytest killed mid-test, bad input, the communicator fixture, pytest-forked."""

from __future__ import annotations

import signal
import subprocess
import time
import xml.etree.ElementTree as ET

import psutil
import pytest
import torch
from plugin_runs import RECORD_ENV, pytest_command

from harness.pytest_plugin.outcomes import RankOutcome, RankProblem, judge

pytest_plugins = ["pytester"]

HANGS = """
import os, time


def record(name, rank, pid):
    with open(os.environ["COMM_HARNESS_TEST_RECORD"], "a") as f:
        f.write(f"{name} {rank} {pid}\\n")


def test_hangs(dist_env):
    record("rank", dist_env.rank, os.getpid())
    record("parent", dist_env.rank, os.getppid())
    time.sleep(600)
"""


@pytest.mark.parametrize(
    "mode",
    [
        pytest.param(["--dist-reuse", "off"], marks=pytest.mark.e2e),
        ["--dist-reuse", "off", "--forked"],
        pytest.param(["--dist-reuse", "on"], marks=pytest.mark.e2e),
    ],
    ids=str,
)
def test_killing_pytest_kills_its_ranks(pytester, mode):
    pytester.makepyfile(test_hangs=HANGS)
    record = pytester.path / "record.txt"
    record.write_text("")
    command, env = pytest_command()
    env[RECORD_ENV] = str(record)
    pytest_process = subprocess.Popen(
        [*command, "--dist-world-size=2", "--dist-timeout=300", *mode],
        cwd=pytester.path,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        give_up = time.monotonic() + 60
        while len(record.read_text().splitlines()) < 4:
            assert time.monotonic() < give_up and pytest_process.poll() is None, "the ranks never started"
            time.sleep(0.05)
    finally:
        pytest_process.send_signal(signal.SIGKILL)
        pytest_process.wait()
    lines = [line.split() for line in record.read_text().splitlines()]
    # The ranks, and under --forked the pytest-forked child between pytest and the ranks.
    doomed = {int(pid) for name, _, pid in lines if name == "rank" or int(pid) != pytest_process.pid}
    give_up = time.monotonic() + 10
    while (alive := [pid for pid in doomed if _alive(pid)]) and time.monotonic() < give_up:
        time.sleep(0.05)
    assert alive == [], f"still running after pytest was killed: {alive}"


def test_pytest_forked_works_with_the_installed_pytest(pytester, run_pytest):
    """pytest-forked 1.7.5 fails every test under pytest 9: this catches a pytest that breaks the cells."""
    pytester.makepyfile(
        test_forked="""
        import os, signal

        def test_passes():
            assert os.getpid() > 0

        def test_crashes():
            os.kill(os.getpid(), signal.SIGSEGV)
        """
    )
    run = run_pytest("--forked")
    assert run.outcomes == {"test_passes": "passed", "test_crashes": "failed"}, run.output
    assert "CRASHED with signal 11" in run.messages["test_crashes"]


@pytest.mark.parametrize("forked", [[], ["--forked"]], ids=["plain", "forked"])
def test_a_failure_is_summarised_by_its_exception_line(pytester, run_pytest, forked):
    # As PyTorch's MultiProcessTestCase fails: a non-distributed test, the exception message spanning lines.
    pytester.makepyfile(
        test_fails="""
        import unittest

        class ProcessGroupTest(unittest.TestCase):
            def test_fails(self):
                detail = "Traceback (most recent call last):\\n  ValueError: boom"
                raise RuntimeError("Process 0 exited with error code 10 and exception:\\n" + detail)
        """
    )
    run = run_pytest(*forked)
    junit = ET.parse(pytester.path / "junit.xml").getroot()
    message = next(junit.iter("failure")).get("message", "")
    assert message.splitlines()[0] == "RuntimeError: Process 0 exited with error code 10 and exception:"
    assert "ValueError: boom" in message
    assert "FAILED test_fails.py::ProcessGroupTest::test_fails - RuntimeError: Process 0" in run.output


def test_communicator_fixture_is_created_and_destroyed_on_every_rank(pytester, run_pytest):
    # A stand-in communicators package, first on the path: it records what the fixture asked for.
    pytester.makepyfile(
        communicators="""
        import os

        class Recorder:
            def __init__(self, device, all2all_backend):
                self.device, self.all2all_backend = device, all2all_backend

            def destroy(self):
                with open(os.environ["COMM_HARNESS_TEST_RECORD"], "a") as f:
                    f.write(f"destroyed {os.getpid()} {os.getpid()}\\n")

        def create_communicator(device, all2all_backend):
            return Recorder(device, all2all_backend)
        """,
        test_communicator="""
        import os

        def test_uses_it(communicator, dist_env):
            assert communicator.all2all_backend == "naive"
            assert communicator.device == dist_env.device
            with open(os.environ["COMM_HARNESS_TEST_RECORD"], "a") as f:
                f.write(f"created {dist_env.rank} {os.getpid()}\\n")
        """,
    )
    run = run_pytest("--dist-world-size=2", "--dist-all2all-backend=naive")
    assert run.outcomes == {"test_uses_it": "passed"}, run.output
    assert sorted(run.pids["created"].values()) == sorted(run.pids["destroyed"].values())
    assert len(run.pids["created"]) == 2


@pytest.mark.e2e
def test_ranks_inherit_the_modules_torch_imports_lazily(pytester, run_pytest):
    # assert_close imports torch.distributed.tensor at its first call: 2.3 s on every rank of every test
    # unless pytest imported it before forking.
    pytester.makepyfile(
        test_lazy="""
        import sys

        def test_already_imported(dist_env):
            assert "torch.distributed.tensor" in sys.modules
        """
    )
    run = run_pytest("--dist-world-size=2", "--dist-reuse=off")
    assert run.outcomes == {"test_already_imported": "passed"}, run.output


@pytest.mark.e2e
def test_fixture_reading_dist_env_in_pytest_is_explained(pytester, run_pytest):
    pytester.makepyfile(
        test_misuse="""
        import pytest

        @pytest.fixture
        def my_rank(dist_env):
            return dist_env.rank

        def test_misuse(my_rank):
            pass
        """
    )
    run = run_pytest("--dist-world-size=2")
    assert run.outcomes == {"test_misuse": "failed"}
    assert "dist_env.rank was read in the pytest process" in run.messages["test_misuse"]


@pytest.mark.e2e
def test_too_few_gpus_is_a_clear_failure_not_a_hang(pytester, run_pytest):
    # Counting here is harmless: this pytest is not the one that forks the ranks.
    world_size = torch.cuda.device_count() + 1
    pytester.makepyfile(test_gpu="def test_gpu(dist_env):\n    pass\n")
    run = run_pytest("--dist-device=cuda", f"--dist-world-size={world_size}", "--dist-timeout=60")
    assert run.outcomes == {"test_gpu": "failed"}
    message = run.messages["test_gpu"]
    assert f"rank {world_size - 1} of {world_size} failed: could not set up the nccl rank" in message
    assert f"needs cuda device {world_size - 1}" in message


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--dist-world-size=0"], "--dist-world-size: expected a positive integer, got '0'"),
        (["--dist-timeout=soon"], "--dist-timeout: expected a positive number of seconds, got 'soon'"),
        (["--dist-device=tpu"], "--dist-device: invalid choice: 'tpu'"),
        (
            ["--dist-world-size=3", "--dist-nodes=2"],
            "--dist-world-size 3 does not split evenly over --dist-nodes 2",
        ),
        (
            ["--dist-nodes=2", "--dist-world-size=2", "--dist-node-rank=2"],
            "--dist-node-rank 2 is not a node of 2",
        ),
        pytest.param(
            [],
            "test_marker.py:2: test_marker.py::test_bad_marker: @pytest.mark.world_size takes positive",
            marks=pytest.mark.e2e,  # it runs pytest through collection, with torch: seconds
        ),
    ],
)
def test_bad_input_is_a_usage_error(pytester, run_pytest, args, expected):
    pytester.makepyfile(
        test_marker="""
        import pytest
        @pytest.mark.world_size("two")
        def test_bad_marker(dist_env):
            pass
        """
    )
    run = run_pytest(*args)
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    assert expected in run.output
    assert "Traceback" not in run.output


def test_a_skip_on_some_ranks_and_a_pass_on_others_is_a_skip():
    verdict = judge(2, [RankOutcome(0, "passed"), RankOutcome(1, "skipped", "no GPU here")], [])
    assert (verdict.status, verdict.message) == ("skipped", "no GPU here")


def test_different_skip_reasons_are_all_given():
    verdict = judge(2, [RankOutcome(0, "skipped", "a"), RankOutcome(1, "skipped", "b")], [])
    assert verdict.message == "rank 0 of 2: a; rank 1 of 2: b"


def test_a_dead_rank_is_named_before_the_ranks_it_left_waiting():
    outcomes = [RankOutcome(0, "failed", "RuntimeError: connection closed by peer", "trace 0")]
    problems = [
        RankProblem(2, "still running; stopped", "stack 2", running=True),
        RankProblem(1, "killed by SIGSEGV"),
    ]
    verdict = judge(3, outcomes, problems)
    assert verdict.status == "failed"
    first_line, *_ = verdict.message.splitlines()
    assert first_line == (
        "rank 1 of 3 killed by SIGSEGV; rank 0 of 3 failed: RuntimeError: connection closed by peer; "
        "rank 2 of 3 still running; stopped"
    )
    assert verdict.message.index("trace 0") < verdict.message.index("stack 2")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
