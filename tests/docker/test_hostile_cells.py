"""A hostile test in a container gains no one privilege on the host, reaches no address of it, and leaves
nothing the harness cannot remove. Real containers of the CPU image; the host's side is tried for real:
another uid runs and opens what the cell planted, a listener on the host's 0.0.0.0 waits to be dialled.
The multi-node and deep-tree cells are slow on a busy host: end-to-end tier (the removal itself is
covered on real trees by tests/harness/test_work_dir_removal.py).
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from test_docker_executor import ProgressRecorder, junit_property, make_cell

from harness.running.executors.docker import UNPRIVILEGED_USER, DockerExecutor, container_user

pytestmark = pytest.mark.docker

# A uid that owns nothing here: any other local user.
OTHER_UID = 4242


def try_as_other_user(path: Path) -> str:
    """What running `path` as OTHER_UID printed, or why it could not run."""
    try:
        done = subprocess.run(
            [str(path)], capture_output=True, text=True, user=OTHER_UID, group=OTHER_UID, extra_groups=[]
        )
    except OSError as error:
        return error.strerror or str(error)
    return done.stdout.strip() or done.stderr.strip()


def privileged_entries(directory: Path) -> list[str]:
    """Entries under `directory` with a set-uid or set-gid bit, or device nodes (links are not followed)."""
    found = []
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            mode = os.lstat(Path(root) / name).st_mode
            if mode & (stat.S_ISUID | stat.S_ISGID) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                found.append(f"{Path(root, name).relative_to(directory)} {stat.filemode(mode)}")
    return found


def test_set_uid_files_and_device_nodes_a_test_plants_give_no_one_privilege(
    executor: DockerExecutor, tmp_path: Path
) -> None:
    tmp_path.chmod(0o755)  # as a checkout is: every user may pass through to OUT
    cell = make_cell("plants-privilege", "cell_plants_privilege.py")
    cell_dir = tmp_path / "out" / cell.id
    work = cell_dir / "work"
    results: list[Any] = []
    runner = threading.Thread(
        target=lambda: results.append(executor.run(cell, cell_dir, [], ProgressRecorder()))
    )
    runner.start()
    try:
        deadline = time.monotonic() + 240
        while not (work / "planted").exists():
            assert runner.is_alive() and time.monotonic() < deadline, "the test never planted its files"
            time.sleep(0.2)

        # While the cell runs: the files are there, set-uid, but no other user reaches them, and they are
        # not root's; the device node was never made.
        assert stat.S_IMODE(cell_dir.stat().st_mode) == 0o700
        assert (work / "suid-id").stat().st_mode & stat.S_ISUID
        assert (work / "suid-id").stat().st_uid == container_user()[0] != 0
        assert not (work / "mem").exists()
        if os.getuid() == 0:
            assert try_as_other_user(work / "suid-id") == "Permission denied"
            assert try_as_other_user(work / "sgid-id") == "Permission denied"
    finally:
        (work / "host-looked").touch()
        runner.join()

    assert results[0].status == "passed", results[0].reason
    planted = junit_property(cell_dir / "junit.xml", "planted")
    assert planted["mknod"] == "EPERM"  # no CAP_MKNOD
    assert planted["modes"] == {"suid-id": "0o4755", "sgid-id": "0o2755"}
    assert (planted["uid"], planted["gid"]) == container_user()
    if os.getuid() == 0:
        assert (planted["uid"], planted["gid"]) == UNPRIVILEGED_USER
    # Inside, no-new-privileges keeps the set-uid bit inert too.
    assert planted["id_inside"].split()[0].split("(")[0] == f"uid={planted['uid']}"
    assert "euid" not in planted["id_inside"] and "egid" not in planted["id_inside"]
    # After: work/ is gone, nothing privileged is left, and the cell's directory is open to read again.
    assert not work.exists()
    assert privileged_entries(cell_dir) == []
    assert stat.S_IMODE(cell_dir.stat().st_mode) == 0o755


class HostListener:
    """A listener on the host's 0.0.0.0 that answers every connection and records where it came from."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("0.0.0.0", 0), backlog=64)
        self.port = self.socket.getsockname()[1]
        self.peers: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, peer = self.socket.accept()
            except OSError:  # closed: the test is over
                return
            self.peers.append(peer[0])
            with connection:
                connection.sendall(b"the host answered\n")

    def close(self) -> None:
        self.socket.close()


def host_addresses() -> list[str]:
    """Every IPv4 address of the host (the docker0 bridge's included), loopback aside."""
    return sorted(
        address.address
        for addresses in psutil.net_if_addrs().values()
        for address in addresses
        if address.family == socket.AF_INET and not address.address.startswith("127.")
    )


@pytest.mark.e2e
def test_no_node_of_a_multi_node_cell_reaches_the_host_and_the_nodes_still_meet(
    executor: DockerExecutor, tmp_path: Path
) -> None:
    listener = HostListener()
    addresses = host_addresses()
    try:
        env = {
            "OMP_NUM_THREADS": "1",
            "HOST_PROBE_PORT": str(listener.port),
            "HOST_PROBE_ADDRS": ",".join(addresses),
        }
        cell = make_cell("dials-the-host", "cell_dials_the_host.py", world_size=2, nodes=2, env=env)
        # The listener answers at each of those addresses: a cell with a route to one would be answered.
        for address in addresses:
            with socket.create_connection((address, listener.port), timeout=5) as connection:
                assert connection.recv(64) == b"the host answered\n"
        answered_the_host = len(listener.peers)

        result = executor.run(cell, tmp_path / cell.id, [], ProgressRecorder())
    finally:
        listener.close()

    # Every rank of both nodes dialled the host's addresses and its own gateways and saw no interface but
    # loopback (the cell's test asserts both); their gather of what they saw crossed the nodes.
    assert result.status == "passed", result.reason
    assert result.counts.passed == 1
    assert listener.peers[answered_the_host:] == []


@pytest.mark.e2e
def test_a_tree_too_deep_and_locked_for_recursion_is_removed_and_the_next_run_works(
    executor: DockerExecutor, tmp_path: Path
) -> None:
    cell = make_cell("deep-tree", "cell_deep_tree.py")

    first = executor.run(cell, tmp_path / cell.id, [], ProgressRecorder())

    assert first.status == "passed", first.reason
    assert not (tmp_path / cell.id / "work").exists()
    again = executor.run(make_cell("deep-tree", "cell_probe.py"), tmp_path / cell.id, [], ProgressRecorder())
    assert again.status == "passed", again.reason
