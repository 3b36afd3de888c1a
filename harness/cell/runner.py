"""The one entry point that runs a cell, in the cell's environment (the host, or a container).

    python -m harness.cell.runner CELL_JSON RESULTS_DIR

Writes RESULTS_DIR/fingerprint.json, runs pytest with the comm-harness plugin's options in a subprocess
(its output on this process's stdout, which the executor tees into log.txt) and exits with pytest's code.
Before pytest starts, the runner joins the cell's cgroup (local cells, where the host gives one) and
becomes the child subreaper of the cell; when pytest ends it kills whatever the tests left running.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from harness.common.contract import (
    CELL_CGROUP_ENV,
    CELL_ENV,
    DEVICE_ENV,
    NODE_RANK_ENV,
    TIMEOUT_SOURCE_ENV,
    WORLD_SIZE_ENV,
    param_env,
)
from harness.config.model import Cell
from harness.host.cgroups import join_cgroup
from harness.host.fingerprint import collect_fingerprint
from harness.pytest_plugin import options
from harness.results.files import (
    FINGERPRINT_JSON,
    JUNIT_XML,
    LASTFAILED_JSON,
    PROGRESS_JSONL,
    PYTEST_CACHE_DIR,
)

PLUGIN_MODULE = "harness.pytest_plugin.plugin"
EXIT_RUNNER_USAGE = 4  # pytest's own code for a usage error; the executor reports the log tail
# Every rank of a cell runs on one host (or in one container, whose network is its loopback alone).
MASTER_ADDR = "127.0.0.1"


def plugin_registered_by_entry_point() -> bool:
    """Whether pytest will load the plugin by itself (installed package, autoload not disabled)."""
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return False
    entry_points = importlib.metadata.entry_points(group="pytest11")
    return any(entry_point.value == PLUGIN_MODULE for entry_point in entry_points)


def build_pytest_command(
    cell: Cell, results_dir: Path, *, load_plugin: bool, node_rank: str | None = None
) -> list[str]:
    """The pytest command line for `cell` (options as the plugin contract names them); `node_rank`: run only
    that node's ranks here."""
    command = [sys.executable, "-m", "pytest"]
    if load_plugin:
        command += ["-p", PLUGIN_MODULE]
    command += [
        # The repository may be mounted read-only (containers): pytest's cache lives in the results
        # directory, and the harness carries its failed tests to the cell's next run (`-- --lf`).
        "-o",
        f"cache_dir={results_dir / PYTEST_CACHE_DIR}",
        "-ra",
        "--junitxml",
        str(results_dir / JUNIT_XML),
        "-o",
        f"junit_suite_name={cell.id}",
    ]
    # None leaves an option out (the plugin's default); the shape and the timeout are always spelled out,
    # so the log's command line says what the cell ran with.
    command += options.command_line(
        {
            options.DEVICE: cell.device,
            options.WORLD_SIZE: cell.world_size,
            options.NODES: cell.nodes if cell.nodes > 1 else None,
            options.NODE_RANK: node_rank if cell.nodes > 1 else None,
            options.TIMEOUT: cell.test_timeout_s,
            options.ALL2ALL_BACKEND: cell.params.get("all2all_backend"),
            options.CHECK_COLLECTIVES: cell.check_collectives,
            options.COMMUNICATOR: cell.params.get("communicator"),
            options.RETRIES: cell.retries or None,
            options.REPEAT: cell.repeat if cell.repeat > 1 else None,
            options.PROGRESS: results_dir / PROGRESS_JSONL,
        }
    )
    command += list(cell.pytest_args)
    if cell.markers:
        command += ["-m", cell.markers]
    if cell.keyword:
        command += ["-k", cell.keyword]
    return command + list(cell.tests)


def free_port(host: str = MASTER_ADDR) -> int:
    """A TCP port nothing listens on now, as the OS hands out (a rendezvous binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def cell_shape_environment(cell: Cell, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The cell's shape as torchrun gives it, for suites that start their own ranks."""
    environ = dict(os.environ if environ is None else environ)
    if NODE_RANK_ENV in environ and "MASTER_ADDR" in environ and "MASTER_PORT" in environ:
        # One node of a multi-node cell: the executor named node 0's rendezvous, which every node must share.
        master = {"MASTER_ADDR": environ["MASTER_ADDR"], "MASTER_PORT": environ["MASTER_PORT"]}
    else:
        master = {"MASTER_ADDR": MASTER_ADDR, "MASTER_PORT": str(free_port())}
    return {
        "WORLD_SIZE": str(cell.world_size),
        "LOCAL_WORLD_SIZE": str(cell.world_size // max(1, cell.nodes)),
        **master,
        CELL_ENV: cell.id,
        DEVICE_ENV: cell.device,
        WORLD_SIZE_ENV: str(cell.world_size),
    }


def build_pytest_environment(cell: Cell, results_dir: Path) -> dict[str, str]:
    """This environment, the cell's shape (torchrun's variables), the cell's `env` over both, and its params
    as HARNESS_PARAM_<KEY> (all2all_backend and communicator are also options)."""
    env = dict(os.environ)
    env.update(cell_shape_environment(cell))
    env.update(cell.env)
    for key, value in cell.params.items():
        env[param_env(key)] = value
    # A hang's message names the matrix key that set the per-test timeout, not the plugin's option.
    env[TIMEOUT_SOURCE_ENV] = f"test_timeout in {cell.source.rpartition(':')[0] or 'the matrix'}"
    return env


# Past the cell's timeout the harness stops the cell itself; this runner kills it this much later, for a
# harness that can no longer (killed, or a container whose harness is gone).
BACKSTOP_GRACE_S = 30.0
PARENT_POLL_S = 0.2
FINGERPRINT_WAIT_INTERRUPTED_S = 2.0
END_DESCENDANTS_WITHIN_S = 5.0
PR_SET_CHILD_SUBREAPER = 36


def contain_own_descendants(cell_id: str) -> None:
    """Join the cell's cgroup (when the executor made one) and become the child subreaper of the cell.

    As subreaper, every orphan below this runner (a double-forked daemon) is re-parented here instead of
    to PID 1, so it stays among this runner's descendants, which the runner kills when the cell ends.
    """
    cgroup = os.environ.pop(CELL_CGROUP_ENV, "")
    if cgroup:
        try:
            join_cgroup(Path(cgroup))
            print(f"[harness] cell {cell_id}: its processes are in cgroup {cgroup}", flush=True)
        except OSError as error:
            print(f"[harness] cell {cell_id}: cannot join cgroup {cgroup} ({error})", flush=True)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        why = os.strerror(ctypes.get_errno())
        print(f"[harness] cell {cell_id}: cannot become the child subreaper ({why})", flush=True)


def run_cell(cell: Cell, results_dir: Path) -> int:
    """Fingerprint the environment, run pytest, return its exit code.

    pytest runs in this process's group. The group and every descendant of this runner (orphans too) die
    with this runner's parent (the harness), at the cell's timeout plus BACKSTOP_GRACE_S, and when pytest
    ends. SIGINT and SIGTERM reach pytest once, as SIGINT, so it still writes junit.xml for the tests it
    finished.
    """
    results_dir.mkdir(parents=True, exist_ok=True)
    _seed_last_failed(results_dir)
    contain_own_descendants(cell.id)
    command = build_pytest_command(
        cell,
        results_dir,
        load_plugin=not plugin_registered_by_entry_point(),
        node_rank=os.environ.get(NODE_RANK_ENV),
    )
    print(f"[harness] cell {cell.id}: {' '.join(command)}", flush=True)
    pytest_process: list[subprocess.Popen[bytes]] = []
    forwarded = threading.Event()

    def forward_once(signum: int, frame: Any) -> None:
        if forwarded.is_set():
            return
        forwarded.set()
        for process in pytest_process:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)

    signal.signal(signal.SIGINT, forward_once)
    signal.signal(signal.SIGTERM, forward_once)
    pytest_process.append(subprocess.Popen(command, env=build_pytest_environment(cell, results_dir)))
    watchdog = threading.Thread(
        target=_watch_parent_and_deadline,
        args=(os.getppid(), time.monotonic() + cell.timeout_s + BACKSTOP_GRACE_S, pytest_process[0].pid),
        name="cell-watchdog",
        daemon=True,
    )
    watchdog.start()
    # Fingerprinting imports torch too (seconds on a loaded host): do it while pytest runs, and do not let
    # it hold up an interrupted cell's exit, whose junit.xml pytest has already written.
    fingerprinter = threading.Thread(
        target=_write_fingerprint, args=(cell, results_dir), name="fingerprint", daemon=True
    )
    fingerprinter.start()
    exit_code = pytest_process[0].wait()
    _keep_last_failed(results_dir)
    fingerprinter.join(timeout=FINGERPRINT_WAIT_INTERRUPTED_S if forwarded.is_set() else None)
    left = end_descendants()
    if left:
        print(f"[harness] cell {cell.id}: killed {left} process(es) its tests left running", flush=True)
    return exit_code


def _last_failed_cache(results_dir: Path) -> Path:
    return results_dir / PYTEST_CACHE_DIR / "v" / "cache" / "lastfailed"


def _seed_last_failed(results_dir: Path) -> None:
    """The failed tests of the cell's last run (lastfailed.json, put there by the harness) into pytest's
    cache, made by this process so that pytest, running as the same user, can update it."""
    try:
        data = (results_dir / LASTFAILED_JSON).read_bytes()
    except OSError:
        return
    _last_failed_cache(results_dir).parent.mkdir(parents=True, exist_ok=True)
    _last_failed_cache(results_dir).write_bytes(data)


def _keep_last_failed(results_dir: Path) -> None:
    """pytest's cache of failed tests as one file at the top of the results directory, where the harness
    takes it from (it reads no deeper path a cell could have made a link)."""
    try:
        data = _last_failed_cache(results_dir).read_bytes()
    except OSError:
        return
    kept = results_dir / LASTFAILED_JSON
    # The harness's copy may be another user's file: replaced, not written through.
    kept.unlink(missing_ok=True)
    kept.write_bytes(data)


def _write_fingerprint(cell: Cell, results_dir: Path) -> None:
    fingerprint = collect_fingerprint()
    fingerprint["cell"] = cell.id
    (results_dir / FINGERPRINT_JSON).write_text(json.dumps(fingerprint, indent=2) + "\n", encoding="utf-8")


def end_descendants() -> int:
    """SIGKILL and reap every process below this runner, orphans re-parented to it included, until none
    is left; how many there were."""
    killed: set[int] = set()
    deadline = time.monotonic() + END_DESCENDANTS_WITHIN_S
    while time.monotonic() < deadline:
        try:
            descendants = psutil.Process().children(recursive=True)
        except psutil.Error:
            break
        if not descendants:
            break
        for process in descendants:
            try:
                if process.status() != psutil.STATUS_ZOMBIE:
                    killed.add(process.pid)
                process.kill()
            except psutil.Error:
                pass
        _reap_children(except_pid=None)
        time.sleep(0.02)
    return len(killed)


def _reap_children(except_pid: int | None) -> None:
    """Reap this runner's exited children (orphans re-parented to it) but `except_pid`, which Popen waits
    for; without this, each daemon a test leaves would stay a zombie of the runner until the cell ends."""
    try:
        children = psutil.Process().children()
    except psutil.Error:
        return
    for child in children:
        if child.pid == except_pid:
            continue
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(child.pid, os.WNOHANG)
        except (psutil.Error, ChildProcessError):
            pass


def _watch_parent_and_deadline(parent_pid: int, deadline: float, pytest_pid: int) -> None:
    """Kill this runner's whole process group when the harness dies or the backstop deadline passes."""
    while True:
        _reap_children(except_pid=pytest_pid)
        if os.getppid() != parent_pid:
            why = "the harness that started this cell is gone"
            break
        if time.monotonic() >= deadline:
            why = "the cell ran past its timeout and the harness did not stop it"
            break
        time.sleep(PARENT_POLL_S)
    print(f"\n[harness] {why}: killing the cell's processes", flush=True)
    kill_own_tree()


def kill_own_tree() -> None:
    """SIGKILL every descendant of this process (as subreaper, orphans of the cell too), then this
    process's group (itself included)."""
    try:
        for child in psutil.Process().children(recursive=True):
            try:
                child.kill()
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    os.killpg(os.getpgrp(), signal.SIGKILL)


def _read_cell(path: Path) -> Cell:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return Cell.from_json(data)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m harness.cell.runner CELL_JSON RESULTS_DIR`."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m harness.cell.runner CELL_JSON RESULTS_DIR", file=sys.stderr)
        return EXIT_RUNNER_USAGE
    try:
        cell = _read_cell(Path(args[0]))
    except (OSError, ValueError, TypeError) as error:
        print(f"[harness] cannot read the cell from {args[0]}: {error}", file=sys.stderr)
        return EXIT_RUNNER_USAGE
    return run_cell(cell, Path(args[1]))


if __name__ == "__main__":
    sys.exit(main())
