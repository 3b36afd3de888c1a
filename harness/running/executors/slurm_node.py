"""One node's task of a Slurm job: runs the cell runner for this node's ranks, on a node of the allocation.

    python -m harness.running.executors.slurm_node CELL_DIR

srun starts one of these per node (`--ntasks-per-node 1`). Node k (SLURM_NODEID) works in the cell's work
directory (k = 0) or `node<k>/work` (harness/running/executors/docker_nodes.py's layout), runs
`python -m harness.cell.runner` there with HARNESS_NODE_RANK=k and the MASTER_ADDR/MASTER_PORT the batch
script chose (node 0's address), writes the runner's output to `slurm-node.log` (bounded) and its exit code
to `node-exit.json` in that work directory. The harness reads both back with the checks of any cell file.
SIGTERM and SIGINT (scancel, a time limit) reach the runner once, which hands them on to pytest.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.common.contract import NODE_RANK_ENV
from harness.config.model import Cell
from harness.results.bounded_log import BoundedLog
from harness.results.files import CELL_JSON, WORK_DIR, read_json, write_json
from harness.running.executors.docker_nodes import node_dir

NODE_LOG = "slurm-node.log"
NODE_EXIT_JSON = "node-exit.json"


def node_work_dir(cell_dir: Path, node_rank: int) -> Path:
    """Where node `node_rank` runs: the cell's work directory, or its own node<k>/work."""
    return (cell_dir if node_rank == 0 else node_dir(cell_dir, node_rank)) / WORK_DIR


def node_environment(cell: Cell, node_rank: int, environ: dict[str, str]) -> dict[str, str]:
    """This task's environment and what makes its runner node `node_rank` of the cell."""
    env = dict(environ)
    env.update({
        NODE_RANK_ENV: str(node_rank),
        "NODE_RANK": str(node_rank),
        "WORLD_SIZE": str(cell.world_size),
        "LOCAL_WORLD_SIZE": str(cell.ranks_per_node),
        # Nodes that share a host (a test cluster's slurmds) must not look like one host to NCCL.
        "NCCL_HOSTID": f"{environ.get('SLURMD_NODENAME', socket.gethostname())}-node{node_rank}",
    })  # fmt: skip
    return env


def main(argv: list[str] | None = None) -> int:
    """Run this node's part of the cell; exits with the runner's exit code."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m harness.running.executors.slurm_node CELL_DIR", file=sys.stderr)
        return 2
    node_rank = int(os.environ.get("SLURM_NODEID", "0"))
    work = node_work_dir(Path(args[0]), node_rank)
    cell = Cell.from_json(read_json(work / CELL_JSON))
    command = [sys.executable, "-m", "harness.cell.runner", str(work / CELL_JSON), str(work)]
    with BoundedLog(work / NODE_LOG) as log:
        log.write(f"[harness] node {node_rank} of {cell.nodes} on {socket.gethostname()}\n".encode())
        log.flush()
        runner = subprocess.Popen(
            command,
            env=node_environment(cell, node_rank, dict(os.environ)),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

        def forward_once(signum: int, frame: Any) -> None:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            if runner.poll() is None:
                runner.send_signal(signal.SIGINT)

        signal.signal(signal.SIGTERM, forward_once)
        signal.signal(signal.SIGINT, forward_once)
        assert runner.stdout is not None
        while chunk := runner.stdout.read1(65536):  # type: ignore[attr-defined]
            log.write(chunk)
            log.flush()
        code = runner.wait()
    write_json(work / NODE_EXIT_JSON, {"node_rank": node_rank, "exit_code": code})
    return code


if __name__ == "__main__":
    sys.exit(main())
