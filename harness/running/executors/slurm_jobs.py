"""What the harness asks of Slurm, through its own commands: submit, read a job's state, cancel.

A job's state comes from `scontrol show job` while slurmctld remembers the job (MinJobAge after its end,
300 s by default), then from `sacct` (which answers only where the cluster keeps accounting). Every job of a
run is named `comm-harness.<run id>`, so that the run guardian and a later run cancel them by that name
(`scancel --name`) when the harness died without doing it itself.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from harness.common.errors import HarnessError

JOB_NAME_PREFIX = "comm-harness."
COMMAND_TIMEOUT_S = 30.0
# States after which the job runs no more (squeue's "job state codes"); COMPLETING is not one of them.
TERMINAL_STATES = frozenset({
    "COMPLETED", "FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "CANCELLED", "PREEMPTED", "BOOT_FAIL",
    "DEADLINE", "SPECIAL_EXIT", "REVOKED",
})  # fmt: skip


class SlurmError(HarnessError):
    """A Slurm command failed (the cluster refused a job, or did not answer)."""


def job_name(run_id: str) -> str:
    """The name every job of run `run_id` carries: what cancels them all."""
    return f"{JOB_NAME_PREFIX}{run_id}"


def _slurm(command: Sequence[str], timeout: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            list(command), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError:
        raise SlurmError(f"{command[0]} is not installed on this host (install Slurm's clients)") from None
    except subprocess.TimeoutExpired:
        raise SlurmError(f"`{' '.join(command)}` did not answer within {timeout:g}s") from None


def slurm_gap() -> str:
    """Why no Slurm cluster can take jobs from this host ("" when `sinfo` answers with a node)."""
    if shutil.which("sbatch") is None:
        return "Slurm's sbatch is not installed on this host"
    try:
        answer = _slurm(["sinfo", "-h", "-o", "%D"], timeout=15)
    except SlurmError as error:
        return str(error)
    if answer.returncode != 0:
        return f"sinfo failed: {_first_line(answer.stderr) or f'exit code {answer.returncode}'}"
    if not answer.stdout.strip():
        return "sinfo lists no nodes"
    return ""


def submit(arguments: Sequence[str], script: str) -> str:
    """Submit `script` with sbatch `arguments`; the job id."""
    answer = _slurm(["sbatch", "--parsable", *arguments, script])
    if answer.returncode != 0:
        raise SlurmError(f"sbatch refused the job: {_first_line(answer.stderr) or answer.returncode}")
    job_id = answer.stdout.strip().split(";")[0]
    if not job_id.isdigit():
        raise SlurmError(f"sbatch answered {answer.stdout.strip()!r}, not a job id")
    return job_id


def cancel(job_id: str) -> None:
    """scancel the job (SIGTERM to its steps, SIGKILL KillWait later); quiet when it has ended already."""
    try:
        _slurm(["scancel", job_id])
    except SlurmError:
        pass


def cancel_jobs_of_run(run_id: str) -> int:
    """Cancel every queued or running job of run `run_id`; how many there were (0 without Slurm)."""
    if shutil.which("squeue") is None:
        return 0
    try:
        listed = _slurm(["squeue", "-h", "--name", job_name(run_id), "-o", "%i"], timeout=10)
        if listed.returncode != 0:
            return 0
        jobs = listed.stdout.split()
        if jobs:
            _slurm(["scancel", *jobs], timeout=10)
    except SlurmError:
        return 0
    return len(jobs)


@dataclass(frozen=True)
class JobState:
    """A job's state as Slurm tells it: `state` (RUNNING, TIMEOUT, ...), why, where, how it ended."""

    state: str
    reason: str = ""
    nodes: tuple[str, ...] = ()
    exit_code: str = ""

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES


def parse_scontrol_job(text: str) -> dict[str, str]:
    """`scontrol show job -o` output as a dict of its Key=Value fields (values may hold spaces: Command)."""
    fields: dict[str, str] = {}
    for match in re.finditer(r"(?:^|\s)([A-Za-z/:]+)=(.*?)(?=\s+[A-Za-z/:]+=|\s*$)", text.strip()):
        fields.setdefault(match.group(1), match.group(2))
    return fields


def expand_hostlist(hostlist: str) -> tuple[str, ...]:
    """Slurm's compressed host list (`n[1-3,7],gpu01`) as host names, in Slurm's order (node ranks)."""
    if not hostlist or hostlist in ("(null)", "None"):
        return ()
    if shutil.which("scontrol") is not None:
        try:
            answer = _slurm(["scontrol", "show", "hostnames", hostlist], timeout=10)
            if answer.returncode == 0 and answer.stdout.split():
                return tuple(answer.stdout.split())
        except SlurmError:
            pass
    return _expand_hostlist_here(hostlist)


def _expand_hostlist_here(hostlist: str) -> tuple[str, ...]:
    hosts: list[str] = []
    for prefix, ranges, plain in re.findall(r"([^,\[]+)\[([^\]]+)\]|([^,\[\]]+)", hostlist):
        if plain:
            hosts.append(plain)
            continue
        for part in ranges.split(","):
            first, _, last = part.partition("-")
            width = len(first)
            for number in range(int(first), int(last or first) + 1):
                hosts.append(f"{prefix}{number:0{width}d}")
    return tuple(hosts)


def job_state(job_id: str) -> JobState | None:
    """The job's state: scontrol while slurmctld remembers it, else sacct; None when neither knows it."""
    answer = _slurm(["scontrol", "show", "job", "-o", job_id])
    if answer.returncode == 0 and answer.stdout.strip():
        fields = parse_scontrol_job(answer.stdout)
        return JobState(
            state=fields.get("JobState", "UNKNOWN"),
            reason=fields.get("Reason", "") if fields.get("Reason") != "None" else "",
            nodes=expand_hostlist(fields.get("NodeList", "")),
            exit_code=fields.get("ExitCode", ""),
        )
    return _sacct_state(job_id)


def _sacct_state(job_id: str) -> JobState | None:
    try:
        answer = _slurm(["sacct", "-j", job_id, "-X", "-n", "-P", "-o", "State,ExitCode,NodeList"])
    except SlurmError:
        return None
    line = answer.stdout.strip().splitlines()[0] if answer.returncode == 0 and answer.stdout.strip() else ""
    return parse_sacct_line(line) if line else None


def parse_sacct_line(line: str) -> JobState:
    """One `sacct -X -n -P -o State,ExitCode,NodeList` line; "CANCELLED by 0" keeps who in the reason."""
    state, exit_code, nodes = (line.split("|") + ["", ""])[:3]
    state, _, by = state.partition(" ")
    return JobState(state=state, reason=by, nodes=expand_hostlist(nodes), exit_code=exit_code)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""
