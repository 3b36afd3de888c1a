"""No process a local cell starts outlives it: not even a double-forked, setsid, renamed daemon with an
empty environment (tests/harness/data/detached_daemon.py), whom neither the process group nor
HARNESS_RUN_ID finds.

Real processes and real cgroups throughout. Tests that need a writable cgroup hierarchy fail in CI
(CI=true, root on a host like this one) and skip elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from cli_runs import harness_env, run_harness

from harness.config.model import Cell
from harness.host.cgroups import (
    cell_cgroup,
    end_cgroup,
    is_run_cgroup,
    members,
    mounted_hierarchies,
    run_cgroup,
    writable_cgroups,
)
from harness.host.processes import pid_alive
from harness.running.executors import local
from harness.running.executors.local import LocalExecutor
from harness.running.guardian import RUN_RECORD, processes_of_run

DATA = Path(__file__).parent / "data"
DAEMON_TEST = DATA / "detached_daemon.py"
MATRIX = """\
version: 1
defaults: {tests: [tests/test_daemon.py], timeout: 300}
devices:
  cpu: {world_sizes: [1], required: true}
  xpu: {world_sizes: [1]}
"""
CELL = Cell(id="cpu-gloo-ws1", device="cpu", backend="gloo", world_size=1, tests=("tests/test_daemon.py",))


def need_cgroups() -> list[Path]:
    """The writable cgroup hierarchies of this host; none fails in CI and skips elsewhere."""
    parents, why = writable_cgroups()
    if not parents:
        message = f"these tests need a writable cgroup hierarchy: {why}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: these tests must run, not skip)", pytrace=False)
        pytest.skip(message)
    return parents


def wait_for(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


@pytest.fixture
def daemon_pid_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Where the daemon writes its pid (through the cell's environment); the test kills what it leaves."""
    path = tmp_path / "daemon.pid"
    monkeypatch.setenv("DAEMON_PID_FILE", str(path))
    yield path
    pid = read_pid(path)
    if pid_alive(pid):
        psutil.Process(pid).kill()
        pytest.fail(f"the daemon (pid {pid}) outlived the test and was killed by its teardown")


@pytest.fixture
def daemon_project(tmp_path: Path) -> Path:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_daemon.py").write_text(DAEMON_TEST.read_text())
    (tmp_path / "matrix.yaml").write_text(MATRIX)
    return tmp_path


def start_daemon_in(cgroup: Path, pid_file: Path) -> int:
    """A process joins `cgroup`, leaves the detached daemon there and exits; the daemon's pid."""
    starter = (
        "import sys; from pathlib import Path; from harness.host.cgroups import join_cgroup;"
        f"join_cgroup(Path({str(cgroup)!r})); sys.path.insert(0, {str(DATA)!r});"
        f"import detached_daemon; detached_daemon.start_detached_daemon({str(pid_file)!r})"
    )
    subprocess.run([sys.executable, "-c", starter], env=harness_env(), check=True, timeout=120)
    pid = read_pid(pid_file)
    assert pid is not None and pid_alive(pid)
    return pid


def run_cell(executor: LocalExecutor, out: Path) -> Any:
    return executor.run(CELL, out / CELL.id, [], lambda cell_id, event: None)


@pytest.mark.parametrize("hierarchy", [0, 1], ids=["first", "second"])
def test_ending_a_cgroup_kills_the_detached_daemon_in_it(
    hierarchy: int, daemon_pid_file: Path, tmp_path: Path
) -> None:
    parents = need_cgroups()
    if hierarchy >= len(parents):
        pytest.skip(f"this host has {len(parents)} writable cgroup hierarchy: {parents}")
    run_dir = parents[hierarchy] / f"comm-harness-{os.getpid():012x}"
    cgroup = cell_cgroup(run_dir, "cpu-gloo-ws1")
    try:
        daemon = start_daemon_in(cgroup, daemon_pid_file)
        assert members(run_dir) == [daemon]
    finally:
        killed = end_cgroup(run_dir)

    assert killed == 1

    wait_for(lambda: not pid_alive(daemon), 10, "the daemon to die")
    assert not run_dir.exists()


def test_a_cell_that_ends_normally_leaves_no_daemon(daemon_pid_file: Path, daemon_project: Path) -> None:
    need_cgroups()
    executor = LocalExecutor(daemon_project)
    try:
        result = run_cell(executor, daemon_project / "out")
    finally:
        executor.close()
    assert result.status == "passed", (daemon_project / "out" / CELL.id / "log.txt").read_text()
    daemon = read_pid(daemon_pid_file)
    assert daemon is not None
    assert not pid_alive(daemon)
    assert not executor.notes


def test_without_a_cgroup_the_cell_runner_still_ends_the_daemon_and_says_what_it_cannot_contain(
    daemon_pid_file: Path, daemon_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "run_cgroup", lambda run_id: (None, "/sys/fs/cgroup is read-only"))
    executor = LocalExecutor(daemon_project)
    try:
        result = run_cell(executor, daemon_project / "out")
    finally:
        executor.close()
    log = (daemon_project / "out" / CELL.id / "log.txt").read_text()
    assert result.status == "passed", log
    assert not pid_alive(read_pid(daemon_pid_file))
    assert "killed 1 process(es) its tests left running" in log
    (note,) = executor.notes
    assert note.startswith("local cells run without a cgroup (/sys/fs/cgroup is read-only)")
    assert "can outlive the run" in note and note in log


def test_a_test_that_kills_its_cell_runner_leaves_no_daemon(
    daemon_pid_file: Path, daemon_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    need_cgroups()
    monkeypatch.setenv("DAEMON_THEN", "kill-runner")
    executor = LocalExecutor(daemon_project)
    try:
        result = run_cell(executor, daemon_project / "out")
    finally:
        executor.close()
    assert result.status == "error"
    assert "the cell runner exited with code -9" in result.reason
    daemon = read_pid(daemon_pid_file)
    assert daemon is not None
    assert not pid_alive(daemon)


def test_a_run_record_names_only_its_own_cgroup() -> None:
    run_id = "0123456789ab"
    own, _ = run_cgroup(run_id)
    if own is not None:
        assert is_run_cgroup(own, run_id)
        assert not is_run_cgroup(own.parent, run_id)
        assert not is_run_cgroup(own / ".." / ".." / own.name, run_id)
    assert not is_run_cgroup(Path("/tmp") / f"comm-harness-{run_id}", run_id)
    assert not is_run_cgroup(Path("/sys/fs/cgroup/comm-harness-../x"), "..")


def test_a_later_run_ends_the_cgroup_a_dead_run_left_in_its_out(
    daemon_project: Path, daemon_pid_file: Path
) -> None:
    parents = need_cgroups()
    run_id = "dead00c0ffee"
    run_dir = parents[0] / f"comm-harness-{run_id}"
    daemon = start_daemon_in(cell_cgroup(run_dir, "cpu-gloo-ws1"), daemon_pid_file)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (daemon_project / "out").mkdir()
    (daemon_project / "out" / RUN_RECORD).write_text(
        json.dumps({"pid": dead.pid, "host": os.uname().nodename, "run_id": run_id, "cgroup": str(run_dir)})
    )

    try:
        done = run_harness("run", "--cell", "xpu-*", "--out", "out", cwd=daemon_project)
    finally:
        left = end_cgroup(run_dir)
    assert not left, "the later run left the dead run's cgroup populated"

    # Only a skipped xpu cell is run (nothing to run on the host): "no test ran", exit 5, after the clean-up.
    assert done.returncode == 5, done.stdout + done.stderr
    assert f"ended what run {run_id} left behind: 1 process(es)" in done.stdout
    wait_for(lambda: not pid_alive(daemon), 10, "the daemon to die")
    assert not run_dir.exists()


def without_cgroups(command: list[str]) -> list[str]:
    """`command` in a mount namespace of its own where every cgroup hierarchy is read-only: a host that
    gives the harness no cgroup, as for an unprivileged user or in a container."""
    mounts = [str(mount) for mount in mounted_hierarchies() if mount is not None]
    if os.getuid() != 0 or shutil.which("unshare") is None or not mounts:
        message = "making cgroups read-only for one process needs root, unshare(1) and a cgroup hierarchy"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: this test must run, not skip)", pytrace=False)
        pytest.skip(message)
    remount = " && ".join(f"mount -o remount,bind,ro {mount} {mount}" for mount in mounts)
    script = f'{remount} && exec "$@"'
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *command]


@pytest.mark.e2e
@pytest.mark.parametrize("cgroups", [True, False], ids=["cgroup", "no-cgroup"])
def test_kill_9_of_the_harness_leaves_no_daemon_within_10_s_and_the_next_run_works(
    cgroups: bool, daemon_project: Path, daemon_pid_file: Path
) -> None:
    command = [sys.executable, "-m", "harness.commands.cli", "run", "--executor", "local", "--out", "out"]
    if cgroups:
        need_cgroups()
    else:
        command = without_cgroups(command)
    # unshare and sh exec: the pid is the harness's.
    harness = subprocess.Popen(
        command,
        cwd=daemon_project,
        env=harness_env(DAEMON_THEN="hang"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: pid_alive(read_pid(daemon_pid_file)), 180, "the daemon")
        record = json.loads((daemon_project / "out" / RUN_RECORD).read_text())
        assert len(processes_of_run(record["run_id"])) >= 2  # the cell runner, pytest
    finally:
        harness.kill()
        output = harness.communicate()[0].decode()
    killed_at = time.monotonic()
    daemon = read_pid(daemon_pid_file)

    wait_for(
        lambda: not pid_alive(daemon) and not processes_of_run(record["run_id"]), 10, "the run's processes"
    )

    assert time.monotonic() - killed_at < 10
    if cgroups:
        wait_for(lambda: not Path(record["cgroup"]).exists(), 10, "the run's cgroup to be removed")
    else:
        assert "cgroup" not in record
        assert "note: local cells run without a cgroup" in output
    daemon_pid_file.unlink()
    done = subprocess.run(
        command, cwd=daemon_project, env=harness_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert not pid_alive(read_pid(daemon_pid_file))
    assert not (daemon_project / "out" / RUN_RECORD).exists()


def test_interrupting_a_cell_still_ends_its_daemon(
    daemon_pid_file: Path, daemon_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    need_cgroups()
    monkeypatch.setenv("DAEMON_THEN", "hang")
    executor = LocalExecutor(daemon_project)
    results: list[Any] = []
    runner = threading.Thread(target=lambda: results.append(run_cell(executor, daemon_project / "out")))
    runner.start()
    try:
        wait_for(lambda: pid_alive(read_pid(daemon_pid_file)), 180, "the daemon")
        executor.interrupt()
        runner.join(60)
    finally:
        executor.close()
    assert results and results[0].reason.startswith("interrupted"), results
    assert not pid_alive(read_pid(daemon_pid_file))
