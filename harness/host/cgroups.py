"""Cgroups that hold every process of a run's local cells, so that no process a cell starts outlives it.

The kernel keeps a cgroup's member list: a process is born in its parent's cgroup and leaves it only when
a writer of cgroupfs moves it, whatever it does to hide (fork twice, setsid, rename itself, clear its
environment). The harness makes OWN/comm-harness-<run id>/<cell> beside its own cgroup, in the cgroup v2
hierarchy (the unified one of a hybrid v1/v2 host) or else in the v1 freezer hierarchy; the cell runner
moves itself into its cell's cgroup before it starts pytest (HARNESS_CELL_CGROUP names it). Ending a
cgroup kills its whole subtree: cgroup.kill where the kernel has it (Linux 5.14), else freeze, SIGKILL
every member, thaw; again until no member is left, then its directories are removed.

Where no hierarchy is mounted writable (not root and nothing delegated, a container's read-only
/sys/fs/cgroup), `run_cgroup` says why and the local executor falls back to what needs no privilege
(process groups, the cell runner as child subreaper, HARNESS_RUN_ID).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
from pathlib import Path

RUN_CGROUP_PREFIX = "comm-harness-"
MOUNTINFO = Path("/proc/self/mountinfo")
OWN_CGROUPS = Path("/proc/self/cgroup")
# How long `end_cgroup` keeps killing (a member that forks while it is signalled) before it gives up.
END_WITHIN_S = 5.0
FREEZE_WAIT_S = 1.0
POLL_S = 0.02


def mounted_hierarchies() -> tuple[Path | None, Path | None]:
    """Where the cgroup v2 hierarchy and the v1 freezer hierarchy are mounted (None: not mounted)."""
    unified = freezer = None
    try:
        lines = MOUNTINFO.read_text().splitlines()
    except OSError:
        return None, None
    for line in lines:
        # "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS"
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(fields) < 5 or len(tail) < 3 or fields[3] != "/":
            continue  # a bind mount of a subtree: our own cgroup's path would not resolve under it
        mount_point = Path(fields[4].replace("\\040", " "))
        if tail[0] == "cgroup2" and unified is None:
            unified = mount_point
        elif tail[0] == "cgroup" and "freezer" in tail[2].split(",") and freezer is None:
            freezer = mount_point
    return unified, freezer


def _own_cgroup(controller: str) -> str | None:
    """This process's cgroup path in the hierarchy of `controller` ("" for v2's unified line)."""
    try:
        lines = OWN_CGROUPS.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    return None


def writable_cgroups() -> tuple[list[Path], str]:
    """This process's cgroup directory in each mounted hierarchy (v2 first, then the v1 freezer) where it
    may make cgroups and move processes, and why not in the others."""
    unified, freezer = mounted_hierarchies()
    hierarchies = ((unified, ""), (freezer, "freezer"))
    candidates = [(mount, _own_cgroup(name)) for mount, name in hierarchies if mount is not None]
    if not candidates:
        return [], "no cgroup v2 or v1 freezer hierarchy is mounted"
    writable, reasons = [], []
    for mount, own in candidates:
        if own is None:
            reasons.append(f"this process has no cgroup in {mount}")
            continue
        directory = mount / own.lstrip("/")
        if os.access(directory, os.W_OK) and os.access(directory / "cgroup.procs", os.W_OK):
            writable.append(directory)
        else:
            reasons.append(f"{directory} is not writable by uid {os.getuid()}")
    return writable, "; ".join(reasons)


def run_cgroup(run_id: str) -> tuple[Path | None, str]:
    """Where the run's cell cgroups go (not made yet), or None and why this host gives the run none."""
    parents, why = writable_cgroups()
    if not parents:
        return None, why
    return parents[0] / f"{RUN_CGROUP_PREFIX}{run_id}", ""


def is_run_cgroup(path: Path, run_id: str) -> bool:
    """Whether `path` (read from a run record) is the run's cgroup in a mounted hierarchy, never more.

    A record names the cgroup that a later run kills: one naming a hierarchy's root would kill the host.
    """
    if path.name != f"{RUN_CGROUP_PREFIX}{run_id}" or not re.fullmatch(r"[0-9a-f]{6,64}", run_id):
        return False
    if not path.is_absolute() or ".." in path.parts:
        return False
    return any(mount is not None and mount in path.parents for mount in mounted_hierarchies())


def cell_cgroup(run_cgroup_dir: Path, cell_id: str) -> Path:
    """Make the cell's cgroup under the run's (OSError when the host refuses)."""
    path = run_cgroup_dir / ("cell-" + re.sub(r"[^A-Za-z0-9_.-]", "_", cell_id))
    path.mkdir(parents=True, exist_ok=True)
    return path


class RunCgroup:
    """The run's cgroup as one process uses it: a cgroup per running cell, and the run's own removed
    whenever no cell of it runs (so that a caller that never closes leaves no directory behind)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._cells = 0

    def open_cell(self, cell_id: str) -> Path:
        """Make the cell's cgroup (OSError when the host refuses)."""
        with self._lock:
            path = cell_cgroup(self.path, cell_id)
            self._cells += 1
            return path

    def close_cell(self, cell: Path) -> int:
        """End the cell's cgroup (and the run's, after its last cell); how many processes were killed."""
        killed = end_cgroup(cell)
        with self._lock:
            self._cells -= 1
            if self._cells == 0:
                killed += end_cgroup(self.path)
        return killed


def join_cgroup(path: Path) -> None:
    """Move this process into `path`; its children are born there (OSError when refused)."""
    (path / "cgroup.procs").write_text(f"{os.getpid()}\n")


def members(path: Path) -> list[int]:
    """The pids of every process in the cgroup and the cgroups below it."""
    pids: list[int] = []
    for directory, _, _ in os.walk(path):
        with contextlib.suppress(OSError):
            pids += [int(pid) for pid in (Path(directory) / "cgroup.procs").read_text().split()]
    return pids


def end_cgroup(path: Path) -> int:
    """Kill every process in the cgroup's subtree, remove its directories; how many processes it killed.

    Never raises: what cannot be killed or removed stays, and a later run's clean-up tries again.
    """
    if not path.is_dir():
        return 0
    killed: set[int] = set()
    deadline = time.monotonic() + END_WITHIN_S
    while time.monotonic() < deadline:
        left = members(path)
        if left:
            killed.update(left)
            _kill_members(path, left)
        # A killed process leaves the member list before it has exited; its cgroup stays busy until then.
        elif _remove_tree(path):
            break
        time.sleep(POLL_S)
    return len(killed)


def _remove_tree(path: Path) -> bool:
    """Remove the cgroup and those below it, deepest first; whether it is gone."""
    for directory, _, _ in sorted(os.walk(path), key=lambda entry: -len(Path(entry[0]).parts)):
        with contextlib.suppress(OSError):
            os.rmdir(directory)
    return not path.exists()


def _kill_members(path: Path, pids: list[int]) -> None:
    # cgroup.kill ends the subtree at once, processes forked meanwhile included.
    if _write(path / "cgroup.kill", "1"):
        return
    # Otherwise freeze first so that nothing forks between reading the members and signalling them; a
    # frozen process signalled SIGKILL dies when thawed.
    frozen = _freeze(path, True)
    for pid in members(path) if frozen else pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    if frozen:
        _freeze(path, False)


def _freeze(path: Path, frozen: bool) -> bool:
    if _write(path / "cgroup.freeze", "1" if frozen else "0"):
        return True
    state = path / "freezer.state"
    if not _write(state, "FROZEN" if frozen else "THAWED"):
        return False
    deadline = time.monotonic() + FREEZE_WAIT_S
    while frozen and time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if state.read_text().strip() == "FROZEN":
                break
        time.sleep(POLL_S)
    return True


def _write(path: Path, text: str) -> bool:
    try:
        path.write_text(text)
        return True
    except OSError:
        return False
