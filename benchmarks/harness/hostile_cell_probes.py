"""The Docker probes of issue #29: what a hostile cell leaves on the host, and what it reaches.

- setuid: a test copies `id` into /results with the set-uid (and set-gid) bit and tries to make a device
  node; while the cell runs, another uid on the host tries to run them through the cell's
  directory; after it, what is left there.
- gateway: every node of a `nodes: 2` cell dials a listener on the host's 0.0.0.0 at the host's own
  addresses, its default gateway and the first address of each of its networks.
- deep-tree: a test leaves a 3000-deep directory chain, a chmod 000 directory and read-only files in
  /results; whether work/ is removed and whether a later run into the same directory works.

    python benchmarks/harness/hostile_cell_probes.py [--probe setuid --probe gateway --probe deep-tree]

Run as root (the usual CI case) on a host with a Docker engine and the cpu image built.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

# The Docker tests' own helpers: the cells as they make them, the host listener, another uid's attempts.
sys.path.insert(0, str(REPO_ROOT / "tests" / "docker"))

from test_docker_executor import junit_property, make_cell  # noqa: E402
from test_hostile_cells import HostListener, host_addresses, try_as_other_user  # noqa: E402

from harness.results.files import remove_tree  # noqa: E402
from harness.running.executors.docker import DockerExecutor  # noqa: E402


def describe(path: Path) -> str:
    info = os.lstat(path)
    return f"{stat.filemode(info.st_mode)} {info.st_uid}:{info.st_gid}"


def left_under(directory: Path) -> dict[str, str]:
    """Every entry under `directory` with its mode and owner (walked without following links)."""
    found = {}
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            path = Path(root) / name
            found[str(path.relative_to(directory))] = describe(path)
    return found


def probe_setuid(executor: DockerExecutor, out: Path) -> dict[str, Any]:
    cell = make_cell("setuid", "cell_plants_privilege.py")
    cell_dir = out / cell.id
    work = cell_dir / "work"
    results: list[Any] = []
    runner = threading.Thread(
        target=lambda: results.append(executor.run(cell, cell_dir, [], lambda *_: None))
    )
    runner.start()
    deadline = time.monotonic() + 240
    while not (work / "planted").exists():
        if time.monotonic() > deadline or not runner.is_alive():
            break
        time.sleep(0.2)
    during: dict[str, Any] = {"cell_dir": describe(cell_dir) if cell_dir.exists() else "absent"}
    if (work / "planted").exists():
        during["work"] = {
            name: describe(work / name) for name in ("suid-id", "sgid-id", "mem") if (work / name).exists()
        }
        during["run suid-id as uid 4242"] = try_as_other_user(work / "suid-id")
        during["run sgid-id as uid 4242"] = try_as_other_user(work / "sgid-id")
        (work / "host-looked").write_text("")
    runner.join()
    result = results[0]
    junit = cell_dir / "junit.xml"
    planted = junit_property(junit, "planted") if junit.exists() else None
    return {
        "probe": "setuid",
        "status": result.status,
        "inside": planted,
        "during": during,
        "left_after": left_under(cell_dir),
    }


def probe_gateway(executor: DockerExecutor, out: Path) -> dict[str, Any]:
    listener = HostListener()
    try:
        env = {
            "OMP_NUM_THREADS": "1",
            "HOST_PROBE_PORT": str(listener.port),
            "HOST_PROBE_ADDRS": ",".join(host_addresses()),
        }
        cell = make_cell("gateway", "cell_dials_the_host.py", world_size=2, nodes=2, env=env)
        result = executor.run(cell, out / cell.id, [], lambda *_: None)
    finally:
        listener.close()
    return {
        "probe": "gateway",
        "status": result.status,
        "reason": result.reason[-600:],
        "host_addresses": host_addresses(),
        "connections_from": listener.peers,
    }


def probe_deep_tree(executor: DockerExecutor, out: Path) -> dict[str, Any]:
    cell = make_cell("deep-tree", "cell_deep_tree.py")
    cell_dir = out / cell.id
    found: dict[str, Any] = {"probe": "deep-tree"}
    for attempt in ("first run", "later run into the same directory"):
        started = time.monotonic()
        try:
            result = executor.run(cell, cell_dir, [], lambda *_: None)
            found[attempt] = {"status": result.status, "reason": result.reason[-300:]}
        except Exception as error:  # the probe records what the harness raised (RecursionError, before)
            found[attempt] = {"raised": f"{type(error).__name__}: {str(error)[:200]}"}
        found[attempt]["work_left"] = (cell_dir / "work").exists()
        found[attempt]["seconds"] = round(time.monotonic() - started, 1)
    return found


PROBES = {"setuid": probe_setuid, "gateway": probe_gateway, "deep-tree": probe_deep_tree}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probe", action="append", choices=sorted(PROBES))
    args = parser.parse_args()
    # Where a checkout's OUT usually lies: a directory every user may pass through.
    directory = Path(tempfile.mkdtemp(prefix="hostile-probes-"))
    directory.chmod(0o755)
    try:
        with DockerExecutor(REPO_ROOT, offline=True) as executor:
            for name in args.probe or list(PROBES):
                print(json.dumps(PROBES[name](executor, directory / "out")), flush=True)
    finally:
        try:
            remove_tree(directory)
        except RecursionError:
            print(f"note: {directory} is left: removing it raised RecursionError", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
