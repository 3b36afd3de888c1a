"""Multi-node cells under Docker: a container per node, sharing a loopback-only network, on a real engine."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import pytest
from test_docker_executor import make_cell

from harness.common.progress_events import ProgressEvent, Started
from harness.running.containers import LABEL_NODE, LABEL_RUN
from harness.running.executors.docker import DockerExecutor

pytestmark = [pytest.mark.docker, pytest.mark.e2e]

LAYOUT_TEST = "tests/communicators/test_node_layout.py"


class WhenTestsStart:
    """An on_progress callback that runs `action` once, in a thread, when the first test starts."""

    def __init__(self, action: Any) -> None:
        self._action = action
        self._started = False
        self.thread: threading.Thread | None = None
        self.seen: dict[str, Any] = {}

    def __call__(self, cell_id: str, event: ProgressEvent) -> None:
        if isinstance(event, Started) and not self._started:
            self._started = True
            self.thread = threading.Thread(target=self._action, args=(self.seen,))
            self.thread.start()


def cell_resources(client: Any, run_id: str) -> tuple[list[Any], list[Any]]:
    mine = {"label": f"{LABEL_RUN}={run_id}"}
    return client.containers.list(all=True, filters=mine, ignore_removed=True), client.networks.list(
        filters=mine
    )


def test_collectives_cross_two_node_containers_sharing_only_loopback(
    executor: DockerExecutor, tmp_path: Path, docker_client: Any
) -> None:
    def inspect(seen: dict[str, Any]) -> None:
        containers, networks = cell_resources(docker_client, executor.run_id)
        (holder,) = [c for c in containers if LABEL_NODE not in c.labels]
        nodes = sorted((c for c in containers if LABEL_NODE in c.labels), key=lambda c: c.labels[LABEL_NODE])
        seen["holder network"] = holder.attrs["HostConfig"]["NetworkMode"]
        seen["node networks"] = {
            c.attrs["HostConfig"]["NetworkMode"] == f"container:{holder.id}" for c in nodes
        }
        seen["host ids"] = [
            next(v for v in c.attrs["Config"]["Env"] if v.startswith("NCCL_HOSTID=")) for c in nodes
        ]
        seen["networks"] = networks
        seen["confined"] = all(c.attrs["HostConfig"]["CapDrop"] == ["ALL"] for c in containers)

    watcher = WhenTestsStart(inspect)
    cell = make_cell("nodes", "cell_collectives.py", world_size=4, nodes=2)
    cell = dataclasses.replace(cell, tests=(*cell.tests, LAYOUT_TEST))

    result = executor.run(cell, tmp_path / cell.id, [], watcher)

    assert result.status == "passed", result.reason
    assert (result.counts.passed, result.counts.failed) == (3, 0)
    watcher.thread.join()
    assert watcher.seen == {
        "holder network": "none",
        "node networks": {True},
        "host ids": ["NCCL_HOSTID=node0", "NCCL_HOSTID=node1"],
        "networks": [],
        "confined": True,
    }
    # Node 1 kept its own record beside node 0's (the cell's).
    assert (tmp_path / cell.id / "node1" / "junit.xml").is_file()
    assert (
        "world size 4 over 2 nodes (this is node 1)" in (tmp_path / cell.id / "node1" / "log.txt").read_text()
    )
    assert cell_resources(docker_client, executor.run_id) == ([], [])


def test_a_node_container_killed_mid_test_fails_the_cell_naming_the_node(
    executor: DockerExecutor, tmp_path: Path, docker_client: Any
) -> None:
    def kill_node_1(seen: dict[str, Any]) -> None:
        containers, _ = cell_resources(docker_client, executor.run_id)
        node_1 = [c for c in containers if c.labels.get(LABEL_NODE) == "1"]
        seen["killed"] = [c.name for c in node_1]
        for container in node_1:
            container.kill()

    watcher = WhenTestsStart(kill_node_1)
    cell = make_cell("node-dies", "cell_node_sleeps.py", world_size=4, nodes=2)

    result = executor.run(cell, tmp_path / cell.id, [], watcher)

    watcher.thread.join()
    assert len(watcher.seen["killed"]) == 1
    assert result.status == "error"
    assert f"node 1 of 2 (container {watcher.seen['killed'][0]}) exited with code 137" in result.reason
    assert "test_every_rank_waits" in result.reason  # where it stopped, from node 0's progress
    assert cell_resources(docker_client, executor.run_id) == ([], [])
