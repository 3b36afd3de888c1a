"""Every kind of outcome a distributed test can have, in fork mode (with, without --forked) and reuse mode."""

from __future__ import annotations

import json

import psutil
import pytest
from plugin_runs import mode_params, run_pytest_in

SCENARIOS = """
import os, signal, time
import pytest, torch, torch.distributed as dist

STATE = []


def record(name, rank, pid=None):
    with open(os.environ["COMM_HARNESS_TEST_RECORD"], "a") as f:
        f.write(f"{name} {rank} {pid or os.getpid()}\\n")


def test_all_reduce(dist_env):
    record("test_all_reduce", dist_env.rank)
    record("parent_of_test_all_reduce", dist_env.rank, os.getppid())
    t = torch.ones(4, device=dist_env.device) * (dist_env.rank + 1)
    dist.all_reduce(t, group=dist_env.group)
    assert t[0].item() == sum(range(1, dist_env.world_size + 1))
    assert (dist_env.backend, dist_env.device.type) == ("gloo", "cpu")


@pytest.mark.parametrize("value", [1, 2])
def test_tmp_path_and_parametrize(dist_env, tmp_path, value):
    record(f"test_tmp_path_and_parametrize[{value}]", dist_env.rank)
    (tmp_path / f"rank{dist_env.rank}").write_text(str(value))
    dist.barrier()
    assert sorted(p.read_text() for p in tmp_path.iterdir()) == [str(value)] * dist_env.world_size


@pytest.fixture
def patched_env(monkeypatch):
    monkeypatch.setenv("SCENARIO_FLAG", "set-by-fixture")
    return monkeypatch


def test_fixture_side_effects(dist_env, patched_env):
    record("test_fixture_side_effects", dist_env.rank)
    assert os.environ["SCENARIO_FLAG"] == "set-by-fixture"


@pytest.fixture
def unpicklable():
    return lambda: "cannot be pickled"


def test_unpicklable_value(dist_env, unpicklable):
    record("test_unpicklable_value", dist_env.rank)
    assert unpicklable() == "cannot be pickled"


def test_fails_on_rank_1(dist_env):
    record("test_fails_on_rank_1", dist_env.rank)
    assert dist_env.rank != 1, "rank one disagrees"


def test_after_failure(dist_env):
    record("test_after_failure", dist_env.rank)


def test_skips(dist_env):
    pytest.skip("nothing to do here")


@pytest.mark.world_size(3, 8)
def test_excluded(dist_env):
    raise AssertionError("must not run")


def test_crash(dist_env):
    record("test_crash", dist_env.rank)
    if dist_env.rank == 1:
        os.kill(os.getpid(), signal.SIGSEGV)
    dist.barrier()


def test_exit(dist_env):
    record("test_exit", dist_env.rank)
    if dist_env.rank == 1:
        os._exit(3)


def test_hang(dist_env):
    record("test_hang", dist_env.rank)
    if dist_env.rank == 0:
        time.sleep(600)
    dist.barrier()


def test_sets_state(dist_env):
    STATE.append(dist_env.rank)


def test_sees_no_state(dist_env):
    assert STATE == [], f"state leaked from the previous test: {STATE}"


def test_not_distributed():
    record("test_not_distributed", -1)
"""

MODES = {
    "fork": ["--dist-reuse", "off"],
    "fork-under-forked": ["--dist-reuse", "off", "--forked"],
    "reuse": ["--dist-reuse", "on"],
    "reuse-under-forked": ["--dist-reuse", "on", "--forked"],
}


@pytest.fixture(scope="module", params=mode_params(MODES))
def scenario_run(request, tmp_path_factory):
    """One real pytest run of SCENARIOS per mode, shared by the checks below."""
    directory = tmp_path_factory.mktemp(request.param)
    (directory / "test_scenarios.py").write_text(SCENARIOS)
    progress = directory / "progress.jsonl"
    run = run_pytest_in(
        directory,
        "--dist-world-size",
        "2",
        "--dist-timeout",
        "2",
        f"--dist-progress={progress}",
        *MODES[request.param],
    )
    return request.param, run, progress


def test_outcomes_name_the_ranks(scenario_run):
    mode, run, _ = scenario_run
    outcomes = run.outcomes
    for name in (
        "test_all_reduce",
        "test_tmp_path_and_parametrize[1]",
        "test_tmp_path_and_parametrize[2]",
        "test_fixture_side_effects",
        "test_unpicklable_value",
        "test_after_failure",
        "test_sets_state",
        "test_not_distributed",
    ):
        assert outcomes[name] == "passed", (name, run.messages.get(name), run.output)
    failure = run.messages["test_fails_on_rank_1"]
    assert outcomes["test_fails_on_rank_1"] == "failed"
    assert "rank 1 of 2 failed" in failure and "rank one disagrees" in failure
    assert "rank 0 of 2" not in failure
    assert outcomes["test_skips"] == "skipped" and "nothing to do here" in run.messages["test_skips"]
    assert outcomes["test_excluded"] == "skipped"
    assert "supports world sizes 3, 8; this run has world size 2" in run.messages["test_excluded"]
    assert (
        outcomes["test_crash"] == "failed" and "rank 1 of 2 killed by SIGSEGV" in run.messages["test_crash"]
    )
    assert outcomes["test_exit"] == "failed"
    assert "rank 1 of 2 exited with code 3" in run.messages["test_exit"]
    assert len(run.pids["test_not_distributed"]) == 1, "a non-distributed test runs once"


def test_hang_is_dumped_and_killed_and_the_session_goes_on(scenario_run):
    _, run, _ = scenario_run
    hang = run.messages["test_hang"]
    assert run.outcomes["test_hang"] == "failed"
    assert "ranks 0, 1 of 2 timed out after 2 s (--dist-timeout)" in hang
    # Each rank's Python stack points into the test body: rank 0 sleeping, rank 1 in the barrier.
    assert hang.count("in test_hang") == 2, hang
    assert "in barrier" in hang.split("---- rank 1 of 2")[1], hang
    assert run.outcomes["test_sets_state"] == "passed", "the session goes on after a timeout"


def test_module_state_isolation(scenario_run):
    mode, run, _ = scenario_run
    if mode.startswith("fork"):
        assert run.outcomes["test_sees_no_state"] == "passed", run.messages.get("test_sees_no_state")
    else:
        # The documented trade-off of reuse mode: workers keep module state from test to test.
        assert run.outcomes["test_sees_no_state"] == "failed"
        assert "state leaked" in run.messages["test_sees_no_state"]


def test_no_rank_survives_the_run(scenario_run):
    _, run, _ = scenario_run
    pids = [pid for ranks in run.pids.values() for pid in ranks.values()]
    assert len(pids) > 10
    survivors = [pid for pid in pids if _alive(pid)]
    assert survivors == [], f"processes left running after pytest ended: {survivors}"


def test_reuse_keeps_workers_and_restarts_them_after_a_failure(scenario_run):
    mode, run, _ = scenario_run
    pids = run.pids
    if mode.startswith("fork"):
        assert pids["test_all_reduce"] != pids["test_tmp_path_and_parametrize[1]"], "fresh ranks per test"
        return
    workers = pids["test_all_reduce"]
    assert pids["test_tmp_path_and_parametrize[1]"] == workers
    assert pids["test_tmp_path_and_parametrize[2]"] == workers
    assert pids["test_fails_on_rank_1"] == workers
    assert set(pids["test_after_failure"].values()).isdisjoint(workers.values()), "restarted after failure"
    # A monkeypatch that set an environment variable keeps the test on the workers: the variable is carried.
    assert pids["test_fixture_side_effects"] == workers
    # Fixture values that do not pickle (a lambda) send the test to fresh forked ranks instead.
    assert set(pids["test_unpicklable_value"].values()).isdisjoint(workers.values())
    assert (
        "ran in fork mode, not on the reuse workers: fixture values that cannot be pickled: unpicklable"
        in (run.output)
    )
    assert (
        "1 of 13 distributed tests ran on fresh ranks (1 fixture values that cannot be pickled)" in run.output
    )
    # Under --forked the workers stay children of the main pytest process; the other tests still fork.
    pytest_pid = pids["parent_of_test_all_reduce"][0]
    runs_in_pytest = pids["test_not_distributed"][-1] == pytest_pid
    assert runs_in_pytest is (mode == "reuse"), (mode, pids)


def test_progress_file_has_a_line_per_event(scenario_run):
    _, run, progress = scenario_run
    events = [json.loads(line) for line in progress.read_text().splitlines()]
    started = [e["nodeid"].split("::")[-1] for e in events if e["event"] == "start"]
    assert sorted(started) == sorted(run.outcomes)
    calls = {
        e["nodeid"].split("::")[-1]: e["outcome"]
        for e in events
        if e["event"] == "report" and e["when"] == "call"
    }
    assert calls["test_all_reduce"] == "passed" and calls["test_fails_on_rank_1"] == "failed"
    assert all(isinstance(e["duration"], float) for e in events if e["event"] == "report")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
