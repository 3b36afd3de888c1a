"""The bench parent: checks the devices, forks one process per rank, watches them, collects rank 0's rows.

The parent imports torch but never initialises CUDA (forked children of a parent that did cannot use it),
so GPUs are counted with nvidia-smi. A rank that raises, dies, or makes no progress for `timeout_s`
seconds ends the bench: every rank is killed and the error names the rank and the step it was in.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from harness.bench.options import BenchOptions
from harness.common.errors import EXIT_TEST_FAILURES, ConfigurationError, HarnessError
from harness.host.fingerprint import query_nvidia_gpus

# How much of a failing rank's traceback the error shows: the end, where the cause is.
TRACEBACK_TAIL_LINES = 25
# Seconds a rank that reported "done" may take to exit before it is killed.
EXIT_GRACE_S = 5.0
# Seconds to wait, after a rank's error, for a peer whose death may have caused it to be reaped.
PEER_DEATH_GRACE_S = 1.0


class BenchRankError(HarnessError):
    """A rank raised, died or hung: the bench measured nothing trustworthy."""

    exit_code = EXIT_TEST_FAILURES


@dataclass
class _Rank:
    rank: int
    process: Any  # multiprocessing.Process (fork context)
    conn: Connection
    step: str = "starting"
    done: bool = False
    error: str = ""
    conn_open: bool = True


def check_devices(options: BenchOptions) -> None:
    """A ConfigurationError unless the host has the backend and a device per rank (CUDA untouched)."""
    import torch.distributed as dist

    backend = options.backend
    available = (
        dist.is_available()
        and {
            "gloo": dist.is_gloo_available,
            "nccl": dist.is_nccl_available,
            "xccl": getattr(dist, "is_xccl_available", lambda: False),
        }[backend]()
    )
    if not available:
        raise ConfigurationError(
            f"--device {options.device} needs torch.distributed's {backend} backend, which this torch "
            f"build lacks; install a torch build with {backend}"
        )
    if options.device != "cuda":
        return
    gpus, reason = query_nvidia_gpus()
    visible = len(gpus)
    hint = ""
    mask = os.environ.get("CUDA_VISIBLE_DEVICES")
    if mask is not None:
        visible = min(visible, len([entry for entry in mask.split(",") if entry.strip()]))
        hint = f" (CUDA_VISIBLE_DEVICES={mask!r})"
    if visible < options.world_size:
        found = f"{visible} visible{hint}" if gpus else f"none found ({reason})"
        advice = f"run with --world-size {visible} or fewer" if visible else "run on a host with NVIDIA GPUs"
        raise ConfigurationError(
            f"--device cuda --world-size {options.world_size} needs one GPU per rank; {found}: {advice}."
        )


def run_bench(
    options: BenchOptions,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    on_step: Callable[[int, str], None] | None = None,
) -> list[dict[str, Any]]:
    """Fork the ranks, run the bench, return rank 0's rows in order; BenchRankError when a rank fails."""
    check_devices(options)
    context = multiprocessing.get_context("fork")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="harness-bench-") as tmp:
        store_path = os.path.join(tmp, "store")
        ranks: list[_Rank] = []
        try:
            for rank in range(options.world_size):
                receiver, sender = context.Pipe(duplex=False)
                process = context.Process(
                    target=_rank_process,
                    args=(options, rank, store_path, sender, os.getpid()),
                    name=f"harness-bench-rank-{rank}",
                    daemon=True,
                )
                process.start()
                sender.close()  # the parent keeps only the reading end: EOF then means the rank is gone
                ranks.append(_Rank(rank, process, receiver))
            _watch(ranks, options.timeout_s, rows, on_row, on_step)
        finally:
            for state in ranks:
                # A finished rank gets a moment to exit by itself; any other is killed at once.
                state.process.join(timeout=EXIT_GRACE_S if state.done else 0)
                if state.process.is_alive():
                    state.process.kill()
                state.process.join(timeout=10)
                state.conn.close()
    return rows


def _watch(
    ranks: list[_Rank],
    timeout_s: float,
    rows: list[dict[str, Any]],
    on_row: Callable[[dict[str, Any]], None] | None,
    on_step: Callable[[int, str], None] | None,
) -> None:
    deadline = time.monotonic() + timeout_s
    # A rank that has sent "done" has nothing left to say: its exit is not waited for (a CUDA or NCCL
    # teardown that hangs must not hold the results), the finally of run_bench reaps or kills it.
    while not all(state.done for state in ranks):
        waitables = [state.conn for state in ranks if state.conn_open]
        waitables += [state.process.sentinel for state in ranks if state.process.exitcode is None]
        ready = wait(waitables, timeout=max(0.0, deadline - time.monotonic()))
        if not ready:
            stuck = [state for state in ranks if not state.done]
            steps = "; ".join(f"rank {state.rank}: {state.step}" for state in stuck)
            raise BenchRankError(
                f"no rank made progress for {timeout_s:g} s (--timeout): "
                f"rank(s) {', '.join(str(state.rank) for state in stuck)} did not finish. Last steps: {steps}"
            )
        for state in ranks:
            if state.conn in ready:
                if _drain(state, rows, on_row, on_step):
                    deadline = time.monotonic() + timeout_s
        for state in ranks:
            if state.error:
                raise BenchRankError(_died_before(ranks, state) + _failure_message(state))
            exitcode = state.process.exitcode
            if exitcode is not None and not state.done:
                _drain(state, rows, on_row, on_step)
                if state.error:
                    raise BenchRankError(_failure_message(state))
                raise BenchRankError(_death_message(state))


def _death_message(state: _Rank) -> str:
    exitcode = state.process.exitcode
    how = f"was killed by signal {-exitcode}" if exitcode < 0 else f"exited with code {exitcode}"
    return f"rank {state.rank} {how} during step '{state.step}'"


def _died_before(ranks: list[_Rank], failed: _Rank) -> str:
    """'rank N was killed ...; then ' when a peer died without a word: the likelier cause of the error."""
    # A peer that dies closes its sockets before the parent can reap it, so its peers' "connection closed"
    # errors can arrive first; the death is the cause worth reporting.
    for state in ranks:
        if state is not failed and not state.done and not state.error:
            state.process.join(timeout=PEER_DEATH_GRACE_S)
            _drain(state, [], None, None)
            if state.process.exitcode not in (None, 0) and not state.error:
                return f"{_death_message(state)}; then "
    return ""


def _drain(
    state: _Rank,
    rows: list[dict[str, Any]],
    on_row: Callable[[dict[str, Any]], None] | None,
    on_step: Callable[[int, str], None] | None,
) -> bool:
    """Read every message the rank has sent; whether there was any."""
    got = False
    while state.conn_open:
        try:
            if not state.conn.poll():
                break
            kind, payload = state.conn.recv()
        except (EOFError, OSError):
            state.conn_open = False
            break
        got = True
        if kind == "step":
            state.step = payload
            if on_step is not None:
                on_step(state.rank, payload)
        elif kind == "row":
            rows.append(payload)
            if on_row is not None:
                on_row(payload)
        elif kind == "error":
            state.error = payload
        elif kind == "done":
            state.done = True
    return got


def _failure_message(state: _Rank) -> str:
    lines = state.error.rstrip().splitlines()
    tail = "\n".join("    " + line for line in lines[-TRACEBACK_TAIL_LINES:])
    cause = lines[-1] if lines else "unknown error"
    return f"rank {state.rank} failed during step '{state.step}': {cause}\n{tail}"


def _rank_process(
    options: BenchOptions, rank: int, store_path: str, conn: Connection, parent_pid: int
) -> None:
    from harness.bench.rank_main import run_rank
    from harness.pytest_plugin.lifetime import die_with_parent, flush_stdio

    die_with_parent(parent_pid)
    succeeded = run_rank(options, rank, store_path, conn)
    conn.close()
    flush_stdio()
    # Straight out: interpreter and CUDA teardown after the work is done has been seen to hang for minutes.
    os._exit(0 if succeeded else 1)
