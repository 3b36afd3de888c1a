"""A multi-node cell under Docker: a container per node, all in one network namespace with only loopback.

Like a Kubernetes pod's pause container, a holder container (network mode `none`, or `host` where the
matrix's `image.network_host` opts in) owns the cell's network namespace, and every node container joins it
(`container:<holder>`): the nodes reach each other at 127.0.0.1 and nothing else, since the namespace has
no interface but `lo` — no address of the host (no bridge, no gateway), none of another cell. It needs
no iptables and no bridge, so it works on engines started with `--bridge=none --iptables=false` too.
Node k runs the cell runner for node k's ranks only (HARNESS_NODE_RANK=k); every rank meets the others
through the TCPStore that node 0's pytest serves at 127.0.0.1:MASTER_PORT, and gloo and NCCL's sockets
use `lo`. Docker gives containers that share a network namespace the holder's hostname, so each node
tells NCCL it is a host of its own with NCCL_HOSTID=node<k> (NCCL then takes its network transport
between nodes, as between hosts); each keeps its own processes, /dev/shm, filesystem and devices.

Results: node 0 writes the cell's junit.xml, progress and fingerprint into the cell's work directory, as a
single-node cell does; they are the record a reader and `harness report` see. Node k > 0 writes its own
into `<cell>/node<k>/work` (harvested, checked, into `<cell>/node<k>/`), its output into
`<cell>/node<k>/log.txt`: a test that fails only on node k's ranks passes on node 0's, so the cell fails
with a reason naming node k and its files, rather than the record losing it.

A node container that exits while node 0 still runs (killed, crashed) stops the whole cell: the others
would wait for its ranks until the test timeout. Every container, the holder last, is removed on every
exit path (end, timeout, Ctrl-C through `stop`, an exception here).
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.common.contract import NODE_RANK_ENV
from harness.config.model import Cell
from harness.results.cell_dir import collect_cell_result
from harness.results.cell_result import CellResult
from harness.results.files import harvest_work_dir

# The cell's own network namespace: a fixed port cannot collide with another cell's.
NODE_STORE_PORT = 29500
NODE_MASTER_ADDR = "127.0.0.1"
NODE_INTERFACE = "lo"
# What the holder runs: nothing, until it is removed (every cell image has Python; not every one `sleep`).
HOLDER_COMMAND = ["python", "-c", "import signal; signal.pause()"]
# Node 0 finished: the others have finished their last test too, or soon will; past this they are stopped.
OTHERS_AFTER_NODE0_S = 30.0
POLL_S = 0.5


def node_environment(cell: Cell, node_rank: int, store_port: int = NODE_STORE_PORT) -> dict[str, str]:
    """What node `node_rank`'s container adds to a single-node cell's environment."""
    return {
        NODE_RANK_ENV: str(node_rank),
        "NODE_RANK": str(node_rank),
        "WORLD_SIZE": str(cell.world_size),
        "LOCAL_WORLD_SIZE": str(cell.ranks_per_node),
        "MASTER_ADDR": NODE_MASTER_ADDR,
        "MASTER_PORT": str(store_port),
        "GLOO_SOCKET_IFNAME": NODE_INTERFACE,
        # NCCL's socket transport and bootstrap between node containers: the only interface there is.
        "NCCL_SOCKET_IFNAME": NODE_INTERFACE,
        # The nodes share the holder's hostname: a host id per node keeps NCCL from taking them for one host.
        "NCCL_HOSTID": f"node{node_rank}",
    }


def store_port(network_host: bool) -> int:
    """The port of node 0's TCPStore: the fixed one in the cell's own namespace, a free one on the host's."""
    if not network_host:
        return NODE_STORE_PORT
    with socket.socket() as probe:
        probe.bind((NODE_MASTER_ADDR, 0))
        return probe.getsockname()[1]


def node_gpus(cell: Cell, gpu_ids: list[int], node_rank: int) -> list[int]:
    """Node `node_rank`'s share of the cell's GPUs, in order."""
    first = node_rank * cell.ranks_per_node
    return gpu_ids[first : first + cell.ranks_per_node]


@dataclass
class NodeContainer:
    """One node's container and what became of it."""

    node_rank: int
    running: Any  # docker._RunningContainer
    exit_code: int | None = None


class NodeContainers:
    """The containers of one multi-node cell; `run` watches them, `stop` (any thread) ends them.

    `create_holder()` creates (not starts) the container whose network namespace the nodes share;
    `create_node(node_rank, holder)` creates (not starts) node `node_rank`'s container in the holder's
    namespace and returns its running handle; `stream(node_rank, running)` starts copying its output,
    returning a thread; `remove(container)` removes a container quietly.
    """

    def __init__(
        self,
        cell: Cell,
        create_holder: Callable[[], Any],
        create_node: Callable[[int, Any], Any],
        stream: Callable[[int, Any], threading.Thread],
        remove: Callable[[Any], None],
    ) -> None:
        self._cell = cell
        self._create_holder = create_holder
        self._create_node = create_node
        self._stream = stream
        self._remove = remove
        self.holder: Any = None
        self.nodes: list[NodeContainer] = []
        self.stop_reason = ""
        self._lock = threading.Lock()

    def __enter__(self) -> NodeContainers:
        self.holder = self._create_holder()
        self.holder.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        for node in self.nodes:
            self._remove(node.running.container)
        if self.holder is not None:
            self._remove(self.holder)

    def run(self) -> tuple[int, str]:
        """Create and start every node, watch them to the end; (node 0's exit code, stop reason)."""
        for node_rank in range(self._cell.nodes):
            running = self._create_node(node_rank, self.holder)
            self.nodes.append(NodeContainer(node_rank, running))
        streams = []
        for node in self.nodes:
            node.running.container.start()
            streams.append(self._stream(node.node_rank, node.running))
        self._watch()
        for thread in streams:
            thread.join(timeout=10)
        for node in self.nodes:
            node.exit_code = node.running.exit_code() if node.running.has_exited() else None
        return self.nodes[0].exit_code if self.nodes[0].exit_code is not None else -1, self.stop_reason

    def stop(self, reason: str) -> None:
        """Stop every node (SIGINT, then SIGKILL after the grace), concurrently; the first reason wins."""
        with self._lock:
            self.stop_reason = self.stop_reason or reason
        threads = [threading.Thread(target=node.running.stop, args=(reason,)) for node in self.nodes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _watch(self) -> None:
        deadline = time.monotonic() + self._cell.timeout_s
        node0_done_at: float | None = None
        while True:
            now = time.monotonic()
            if now >= deadline:
                self.stop(f"cell timed out after {self._cell.timeout_s:g}s; the node containers were killed")
                return
            exited = {node.node_rank: node for node in self.nodes if node.running.has_exited()}
            if len(exited) == len(self.nodes) or self.stop_reason:
                return
            for rank, node in exited.items():
                code = node.running.exit_code()
                if rank > 0 and 0 not in exited and code != 0:
                    self.stop(
                        f"node {rank} of {self._cell.nodes} (container {node.running.container.name}) "
                        f"exited with code {code}{_signal_name(code)} while the cell ran; the other nodes "
                        "were stopped"
                    )
                    return
            if 0 in exited:
                node0_done_at = node0_done_at or now
                if now - node0_done_at > OTHERS_AFTER_NODE0_S:
                    late = [n.node_rank for n in self.nodes if n.node_rank not in exited]
                    self.stop(f"node(s) {late} still ran {OTHERS_AFTER_NODE0_S:g}s after node 0 finished")
                    return
            time.sleep(POLL_S)


def _signal_name(code: int) -> str:
    return {137: " (killed: SIGKILL)", 139: " (SIGSEGV)", 143: " (SIGTERM)"}.get(code, "")


def node_dir(results_dir: Path, node_rank: int) -> Path:
    """Where node `node_rank` > 0 leaves its results, inside the cell's directory."""
    return results_dir / f"node{node_rank}"


def with_node_result(
    cell: Cell,
    result: CellResult,
    node_rank: int,
    exit_code: int,
    results_dir: Path,
    duration: float,
    executor: str,
) -> CellResult:
    """The cell's result (node 0's record) failed or errored when node `node_rank` > 0 did not pass."""
    where = node_dir(results_dir, node_rank)
    refused = harvest_work_dir(where)
    node = collect_cell_result(cell, where, exit_code, duration, executor, refused=refused)
    if node.status == "passed" or result.status not in ("passed", "failed"):
        return result
    status = node.status if result.status == "passed" else result.status
    reason = f"node {node_rank} of {cell.nodes}: {node.reason} (its files: {where.name}/)"
    return dataclasses.replace(result, status=status, reason="\n".join(filter(None, [result.reason, reason])))
