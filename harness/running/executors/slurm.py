"""Runs a cell as a Slurm job: one allocation of the cell's nodes, one task per node running its ranks.

The harness writes a batch script into the cell's directory and submits it (`sbatch`): `--nodes N
--ntasks-per-node 1`, the cell's GPUs per node as GRES, its timeout as the job's time limit, the lab's
partition, account, QoS and further sbatch arguments (the matrix's `slurm:`, the command line's --slurm-*
over it). The script sets MASTER_ADDR to the first node of the allocation (node 0, where its TCPStore
listens) and `srun` starts `python -m harness.running.executors.slurm_node` on every node, in the nodes' own
environment or in the matrix's image through the cluster's container support (`--container-image`,
pyxis/enroot). Node k works in the cell's work directory (k = 0) or `node<k>/work`, as under Docker.

The cell's directory must be one every node sees at the same path: --out itself, or a shared results
directory (`slurm.results_dir`), from which the harness copies the expected files back, checked like any
cell's (harness/results/files.py), and which it then removes. Progress is followed while the job runs.
When the job has ended, Slurm's word on it (COMPLETED, FAILED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, CANCELLED,
from harness/running/executors/slurm_jobs.py) becomes the cell's reason, naming the node that failed. Ctrl-C
cancels the running jobs; a harness killed outright has its jobs cancelled by name by the run guardian.
"""

from __future__ import annotations

import math
import re
import shlex
import sys
import threading
import time
from pathlib import Path

from harness.common.errors import ConfigurationError
from harness.common.progress_events import ProgressCallback
from harness.config.model import Cell, SlurmSpec
from harness.results.bounded_log import BoundedLog
from harness.results.cell_dir import collect_cell_result, prepare_cell_dir
from harness.results.cell_result import CellResult
from harness.results.files import (
    HARVESTED_FILES,
    LOG_TXT,
    PROGRESS_JSONL,
    READ_LIMIT,
    UnsafeResultFile,
    harvest_work_dir,
    read_json,
    read_regular,
    remove_tree,
    write_new,
)
from harness.running.executors.docker_nodes import node_dir, with_node_result
from harness.running.executors.progress_reader import ProgressReader
from harness.running.executors.protocol import Executor
from harness.running.executors.running import RunningCells
from harness.running.executors.slurm_jobs import JobState, SlurmError, cancel, job_name, job_state, submit
from harness.running.executors.slurm_node import NODE_EXIT_JSON, NODE_LOG, node_work_dir

PACKAGE_PARENT = Path(__file__).resolve().parents[3]
BATCH_SCRIPT = "slurm-job.sh"
# The batch script's output (srun's own messages: which task failed on which node, why the job ended).
BATCH_OUTPUT = "slurm-batch.out"
POLL_S = 2.0
# Past its time limit Slurm ends the job itself; the harness cancels it only if Slurm has not this much later.
BACKSTOP_GRACE_S = 300.0
# Where node 0's TCPStore listens: a port per job, so that jobs sharing a node do not collide.
MASTER_PORT_BASE = 20000
MASTER_PORT_SPAN = 20000
# The interpreter in a container image (the nodes' own environment uses the harness's interpreter).
CONTAINER_PYTHON = "python3"
# What comes back from a node's work directory besides the harvested files.
NODE_FILES = {NODE_LOG: READ_LIMIT, NODE_EXIT_JSON: 4096, BATCH_OUTPUT: READ_LIMIT, **HARVESTED_FILES}


def time_limit_minutes(cell: Cell) -> int:
    """The job's time limit: the cell's timeout, rounded up to Slurm's whole minutes."""
    return max(1, math.ceil(cell.timeout_s / 60))


def sbatch_arguments(
    cell: Cell, spec: SlurmSpec, run_id: str, job_dir: Path, project_root: Path
) -> list[str]:
    """sbatch's options for the cell's job; the lab's own `sbatch_args` come last, so they win."""
    arguments = [
        f"--job-name={job_name(run_id)}",
        f"--comment={cell.id}",
        f"--nodes={cell.nodes}",
        "--ntasks-per-node=1",
        f"--time={time_limit_minutes(cell)}",
        f"--output={job_dir / 'work' / BATCH_OUTPUT}",
        f"--chdir={project_root}",
    ]
    for option, value in (("partition", spec.partition), ("account", spec.account), ("qos", spec.qos)):
        if value:
            arguments.append(f"--{option}={value}")
    if cell.device in ("cuda", "xpu"):
        arguments.append(f"--gres={spec.gres}:{cell.ranks_per_node}")
    return arguments + list(spec.sbatch_args)


def srun_command(cell: Cell, spec: SlurmSpec, job_dir: Path, project_root: Path) -> list[str]:
    """The job's one step: a task per node running its node's share of the cell."""
    command = ["srun", f"--nodes={cell.nodes}", "--ntasks-per-node=1", "--kill-on-bad-exit=1"]
    python = sys.executable
    if spec.container_image:
        mounts = sorted({str(project_root), str(job_dir), str(PACKAGE_PARENT)})
        command += [
            f"--container-image={spec.container_image}",
            "--container-mounts=" + ",".join(f"{path}:{path}" for path in mounts),
            f"--container-workdir={project_root}",
        ]
        python = CONTAINER_PYTHON
    return [*command, python, "-m", "harness.running.executors.slurm_node", str(job_dir)]


def batch_script(cell: Cell, spec: SlurmSpec, job_dir: Path, project_root: Path) -> str:
    """The job's batch script: node 0's address and port for every node, then the step."""
    srun = shlex.join(srun_command(cell, spec, job_dir, project_root))
    return f"""#!/bin/bash
# comm-harness cell {cell.id}: {cell.nodes} node(s), one task each running its node's ranks.
set -u
# Node 0 (the allocation's first node, where this script runs) serves the ranks' TCPStore.
first=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
address=$(scontrol show node -o "$first" | sed -n 's/.*NodeAddr=\\([^ ]*\\).*/\\1/p')
export MASTER_ADDR=${{address:-$first}}
export MASTER_PORT=$(({MASTER_PORT_BASE} + SLURM_JOB_ID % {MASTER_PORT_SPAN}))
export PYTHONPATH={shlex.quote(str(PACKAGE_PARENT))}${{PYTHONPATH:+:$PYTHONPATH}}
export PYTHONUNBUFFERED=1
echo "[harness] job $SLURM_JOB_ID on $SLURM_JOB_NODELIST; MASTER_ADDR=$MASTER_ADDR MASTER_PORT=$MASTER_PORT"
exec {srun}
"""


# srun's word on a task that did not end well: "srun: error: n2: task 1: Killed".
SRUN_TASK_ERROR = re.compile(r"srun: error: (\S+): tasks? ([0-9,-]+): (.+)")
SLURMSTEPD_JOB_LINE = re.compile(r"\*\*\* (JOB|STEP) \S+ ON (\S+) (.+?) \*\*\*")


def job_reason(
    job_id: str, job: JobState, cell: Cell, exit_codes: list[int | None], batch_output: str
) -> str:
    """Why the cell's job did not simply complete, naming its nodes ("" when its tests speak for it)."""
    if job.state == "COMPLETED":
        return ""
    srun_says = {host: message for host, _, message in SRUN_TASK_ERROR.findall(batch_output)}
    hosts = list(job.nodes) + [""] * (cell.nodes - len(job.nodes))

    def node(rank: int) -> str:
        host = hosts[rank]
        said = f": srun: {srun_says[host]}" if host in srun_says else ""
        return f"node {rank} of {cell.nodes}{f' ({host})' if host else ''}{said}"

    unfinished = [rank for rank, code in enumerate(exit_codes) if code is None]
    failed = [rank for rank, code in enumerate(exit_codes) if code not in (None, 0)]
    nodes = ", ".join(job.nodes) or "its nodes"
    if job.state == "TIMEOUT":
        return (
            f"Slurm job {job_id} TIMEOUT: the cell ran past its time limit of {time_limit_minutes(cell)} min "
            f"(timeout {cell.timeout_s:g}s) on {nodes}, and Slurm ended it"
        )
    if job.state == "FAILED" and not unfinished:
        return ""  # every node's runner ended: the tests' results say what failed, node by node
    stepd = [f"{where}: {what}" for _, where, what in SLURMSTEPD_JOB_LINE.findall(batch_output)]
    why = f" ({job.reason})" if job.reason else ""
    text = f"Slurm job {job_id} {job.state}{why} on {nodes}"
    if unfinished:
        text += "; ended without finishing: " + "; ".join(node(rank) for rank in unfinished)
    elif failed:
        text += "; failed: " + "; ".join(node(rank) for rank in failed)
    if stepd:
        text += "; slurmstepd: " + stepd[0]
    return text


class _SubmittedJob:
    """A cell's job while the harness waits for it; `stop` (any thread) cancels it."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.stop_reason = ""
        self._lock = threading.Lock()

    def stop(self, reason: str) -> None:
        with self._lock:
            if self.stop_reason:
                return
            self.stop_reason = reason
        cancel(self.job_id)


class SlurmExecutor(Executor):
    """Submits each cell as a Slurm job from this host and collects its results when it ends."""

    name = "slurm"

    def __init__(
        self,
        project_root: Path,
        *,
        run_id: str,
        options: SlurmSpec | None = None,
        poll_s: float = POLL_S,
    ) -> None:
        self.project_root = project_root.resolve()
        self.run_id = run_id
        self.options = options or SlurmSpec()  # the command line's --slurm-*
        self.poll_s = poll_s
        self._running = RunningCells()

    def spec(self, cell: Cell) -> SlurmSpec:
        """The cell's Slurm settings: the matrix's, with the command line's over them."""
        return (cell.slurm or SlurmSpec()).with_command_line(self.options)

    def run(
        self, cell: Cell, results_dir: Path, gpu_ids: list[int], on_progress: ProgressCallback
    ) -> CellResult:
        """Submit the cell's job, follow it to its end, and collect its results."""
        spec = self.spec(cell)
        results_dir = results_dir.resolve()
        job_dir = self._job_dir(cell, spec, results_dir)
        for cell_dir in dict.fromkeys([results_dir, job_dir]):
            prepare_cell_dir(cell, cell_dir)
            for rank in range(1, cell.nodes):
                prepare_cell_dir(cell, node_dir(cell_dir, rank))
        started = time.monotonic()
        script = job_dir / BATCH_SCRIPT
        write_new(script, batch_script(cell, spec, job_dir, self.project_root).encode())
        arguments = sbatch_arguments(cell, spec, self.run_id, job_dir, self.project_root)
        with BoundedLog(results_dir / LOG_TXT) as log:
            log.write(f"[harness] sbatch {shlex.join(arguments)} {script}\n".encode())
            try:
                job_id = submit(arguments, str(script))
            except SlurmError as error:
                return self._error(cell, results_dir, str(error), started)
            log.write(f"[harness] Slurm job {job_id}\n".encode())
            log.flush()
            job = _SubmittedJob(job_id)
            self._running.add(cell.id, job)
            try:
                with ProgressReader(job_dir / "work" / PROGRESS_JSONL, cell.id, on_progress):
                    state = self._follow(cell, job, log)
            finally:
                self._running.remove(cell.id)
            if job_dir != results_dir:
                self._bring_back(cell, job_dir, results_dir)
                remove_tree(job_dir)
            exit_codes = [self._node_exit_code(results_dir, rank) for rank in range(cell.nodes)]
            batch_output = self._append(log, results_dir, BATCH_OUTPUT)
            self._append(log, results_dir, NODE_LOG)
        for rank in range(1, cell.nodes):
            with BoundedLog(node_dir(results_dir, rank) / LOG_TXT) as node_log:
                self._append(node_log, node_dir(results_dir, rank), NODE_LOG, rank)
        if job.stop_reason:
            reason = job.stop_reason
        elif state is None:
            reason = f"Slurm job {job_id}: Slurm no longer knows it (scontrol forgot it; sacct keeps nothing)"
        else:
            reason = job_reason(job_id, state, cell, exit_codes, batch_output)
        refused = harvest_work_dir(results_dir)
        duration = time.monotonic() - started
        exit_code = exit_codes[0] if exit_codes[0] is not None else -1
        result = collect_cell_result(
            cell, results_dir, exit_code, duration, self.name, reason=reason, refused=refused
        )
        for rank in range(1, cell.nodes):
            code = exit_codes[rank] if exit_codes[rank] is not None else -1
            result = with_node_result(cell, result, rank, code, results_dir, duration, self.name)
        return result

    def _job_dir(self, cell: Cell, spec: SlurmSpec, results_dir: Path) -> Path:
        if not spec.results_dir:
            return results_dir
        shared = Path(spec.results_dir)
        if not shared.is_absolute() or not shared.is_dir():
            raise ConfigurationError(
                f"cell {cell.id}: slurm results_dir {shared} must be an existing absolute directory that "
                "every node mounts at the same path"
            )
        return shared / self.run_id / cell.id

    def _follow(self, cell: Cell, job: _SubmittedJob, log: BoundedLog) -> JobState | None:
        """Poll the job until it ends; log each change of state. None: Slurm lost track of it."""
        seen = ""
        running_since: float | None = None
        backstop = time_limit_minutes(cell) * 60 + BACKSTOP_GRACE_S
        while True:
            try:
                state = job_state(job.job_id)
            except SlurmError as error:
                log.write(f"[harness] {error}\n".encode())
                state = JobState("UNREACHABLE")
            if state is None:
                return None
            said = f"{state.state}{f' ({state.reason})' if state.reason else ''}"
            if said != seen:
                where = f" on {','.join(state.nodes)}" if state.nodes else ""
                log.write(f"[harness] Slurm job {job.job_id}: {said}{where}\n".encode())
                log.flush()
                seen = said
            if state.finished:
                return state
            if state.state == "RUNNING":
                running_since = running_since or time.monotonic()
                if time.monotonic() - running_since > backstop:
                    job.stop(f"Slurm job {job.job_id} still ran {backstop:g}s after it started; cancelled")
            time.sleep(self.poll_s)

    def _bring_back(self, cell: Cell, job_dir: Path, results_dir: Path) -> None:
        """Copy each node's expected files from the shared directory into --out, checked and bounded."""
        for rank in range(cell.nodes):
            source, target = node_work_dir(job_dir, rank), node_work_dir(results_dir, rank)
            for name, limit in NODE_FILES.items():
                try:
                    data = read_regular(source / name, limit, tail=name != NODE_EXIT_JSON)
                except (OSError, UnsafeResultFile):
                    continue  # absent or unsafe: the cell is judged without it, as with any missing file
                write_new(target / name, data)

    @staticmethod
    def _node_exit_code(results_dir: Path, rank: int) -> int | None:
        try:
            record = read_json(node_work_dir(results_dir, rank) / NODE_EXIT_JSON, NODE_FILES[NODE_EXIT_JSON])
        except (OSError, ValueError, UnsafeResultFile):
            return None
        code = record.get("exit_code") if isinstance(record, dict) else None
        return code if isinstance(code, int) else None

    @staticmethod
    def _append(log: BoundedLog, cell_dir: Path, name: str, rank: int = 0) -> str:
        """Append a file of the node's work directory to `log`; its text ("" when absent or unsafe)."""
        try:
            data = read_regular(node_work_dir(cell_dir, 0) / name, READ_LIMIT, tail=True)
        except FileNotFoundError:
            return ""
        except (OSError, UnsafeResultFile) as error:
            log.write(f"[harness] node {rank}'s {name} was not read: {error}\n".encode())
            return ""
        log.write(data)
        log.flush()
        return data.decode("utf-8", errors="replace")

    def _error(self, cell: Cell, results_dir: Path, reason: str, started: float) -> CellResult:
        harvest_work_dir(results_dir)
        for rank in range(1, cell.nodes):
            harvest_work_dir(node_dir(results_dir, rank))
        return CellResult.of_cell(
            cell,
            "error",
            reason,
            executor=self.name,
            duration_s=time.monotonic() - started,
            results_dir=str(results_dir),
        )

    def interrupt(self) -> None:
        """Cancel every running job (Ctrl-C); their cells' results say "interrupted"."""
        self._running.stop_all("interrupted")

    def close(self) -> None:
        """Cancel anything still running; the run command calls it on every exit path."""
        self.interrupt()
