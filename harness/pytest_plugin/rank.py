"""Code that runs inside a rank process: the process's own set-up, its process group, and the test body."""

from __future__ import annotations

import dataclasses
import faulthandler
import os
import pickle
import signal
import traceback
from collections.abc import Callable
from datetime import timedelta
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from harness.common.dist_env import DistEnv
from harness.pytest_plugin.desync import collective_trace
from harness.pytest_plugin.desync.native_stacks import allow_native_stack_dumps
from harness.pytest_plugin.desync.trace_file import trace_path_of
from harness.pytest_plugin.lifetime import die_with_parent, flush_stdio
from harness.pytest_plugin.nodes import enter_node, rendezvous_store
from harness.pytest_plugin.outcomes import RankOutcome
from harness.pytest_plugin.rank_warnings import record_warnings, restore_session_filters
from harness.pytest_plugin.reuse.carried_state import ForkTimeState
from harness.pytest_plugin.reuse.worker_state import (
    WorkerState,
    apply_instance_attributes,
    with_fresh_monkeypatches,
)
from harness.pytest_plugin.settings import DistSettings
from harness.pytest_plugin.targets import create_on_rank, factory_on_rank

if TYPE_CHECKING:
    import torch

# Exit code of a rank whose plugin code (not the test) raised: the parent reports it as such.
EXIT_RANK_CRASHED = 70
# Collectives must not time out before the plugin does, or the report would lose the ranks' stacks.
_PROCESS_GROUP_TIMEOUT_MARGIN_S = 60.0


class RankSetupError(Exception):
    """The rank cannot run at all here (e.g. fewer visible GPUs than ranks)."""


def become_rank(rank: int, parent_pid: int, pgid: int, stack_path: str, main: Callable[[], None]) -> NoReturn:
    """Turn a freshly forked child into a rank process, run `main`, and exit without returning into pytest."""
    code = EXIT_RANK_CRASHED
    try:
        os.setpgid(0, pgid)  # pgid 0: this rank founds the group the others join
        die_with_parent(parent_pid)
        allow_native_stack_dumps()
        with open(stack_path, "w") as stack_file:
            # A crash writes its Python stack here; on a timeout the parent sends SIGUSR1 to get one.
            faulthandler.enable(file=stack_file, all_threads=True)
            faulthandler.register(signal.SIGUSR1, file=stack_file, all_threads=True)
            collective_trace.set_trace_path(trace_path_of(stack_path))
            main()
            code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        flush_stdio()
        os._exit(code)


def run_one_test(
    item: pytest.Function, settings: DistSettings, rank: int, store_path: str, results: Connection
) -> None:
    """Fork mode: join a fresh process group, run the test body once, report.

    The group is not destroyed: the rank exits next, which frees it all the same, and destroying a gloo group
    costs 20-40 ms per rank (a third of a trivial test).
    """
    try:
        env = join_process_group(settings, rank, store_path)
    except BaseException as exc:
        results.send(_setup_failure(settings, rank, exc))
        return
    outcome = run_test_body(item, env, item.funcargs, settings)
    flush_stdio()
    results.send(outcome)


def serve_tests(
    items: dict[str, pytest.Function],
    settings: DistSettings,
    rank: int,
    store_path: str,
    results: Connection,
    requests: Connection,
    warning_filters: list[Any],
    fork_time: ForkTimeState,
) -> None:
    """Reuse mode: join the process group once, then run each test the parent names, until told to stop.

    `warning_filters`: the session's, from before the test this worker was forked in added its own.
    `fork_time`: the pytest process's state when it forked this worker; what it carries is relative to it.
    """
    import torch.distributed as dist

    restore_session_filters(warning_filters)
    env: DistEnv | None = None
    state: WorkerState | None = None
    while True:
        try:
            request = requests.recv()
        except EOFError:
            break
        if request is None:
            break
        nodeid, payload = request
        if env is None:
            try:
                env = join_process_group(settings, rank, store_path)
                state = WorkerState(fork_time, settings.device, env.device.index, warning_filters)
            except BaseException as exc:
                results.send(_setup_failure(settings, rank, exc))
                return
        assert state is not None
        item = items[nodeid]
        try:
            funcargs, carried = pickle.loads(payload)
            funcargs, monkeypatches = with_fresh_monkeypatches(funcargs)
            state.apply(carried)
            apply_instance_attributes(item.instance, carried.instance_attributes)
        except BaseException as exc:
            outcome = RankOutcome(
                rank,
                "failed",
                f"could not take on the fixture values and state of the pytest process: {exc!r}",
                traceback.format_exc(),
            )
        else:
            outcome = run_test_body(item, env, funcargs, settings)
            for monkeypatch in monkeypatches:
                monkeypatch.undo()
        flush_stdio()
        results.send(outcome)
        # After the outcome is sent: the pytest process goes on to the next test's set-up meanwhile, and this
        # worker reads the next payload only once its state is back.
        state.restore()
    if env is not None:
        dist.destroy_process_group()


def join_process_group(settings: DistSettings, rank: int, store_path: str) -> DistEnv:
    """Take this rank's place on its node, bind its device by local rank and join the default process group.

    `store_path`: the rendezvous, a FileStore private to this run, or on one node of several the key of this
    test in node 0's TCPStore (nodes.rendezvous_store).
    """
    import torch
    import torch.distributed as dist

    place = enter_node(settings, rank)
    device = _bind_device(settings.device, place.local_rank, settings.local_world_size)
    if settings.check_collectives:
        collective_trace.enable_consistency_check()
    store = rendezvous_store(settings, store_path)
    options: dict[str, Any] = {}
    if device.type != "cpu":
        options["device_id"] = device  # eager communicator set-up, bound to this rank's device
    dist.init_process_group(
        settings.backend,
        store=store,
        rank=rank,
        world_size=settings.world_size,
        timeout=timedelta(seconds=settings.timeout_s + _PROCESS_GROUP_TIMEOUT_MARGIN_S),
        **options,
    )
    # Gloo's init can return on one rank before its peers have finished connecting: a rank that then exits
    # at once (a test with no collective) breaks their connection. One collective completes set-up everywhere.
    # Not dist.barrier(): it probes for an accelerator, 240 ms per rank with a CUDA build of torch.
    dist.all_reduce(torch.zeros(1, device=device))
    return DistEnv(
        rank,
        settings.world_size,
        device,
        dist.group.WORLD,
        settings.backend,
        place.node_rank,
        place.local_rank,
        place.local_world_size,
        place.nodes,
    )


def run_test_body(
    item: pytest.Function, env: DistEnv, funcargs: dict[str, Any], settings: DistSettings
) -> RankOutcome:
    """Call the test function with this rank's dist_env/communicator in place of the placeholders.

    The outcome carries the warnings the body (or the communicator's creation) raised and did not catch.
    """
    collective_trace.start_test(settings.trace_collectives)
    with record_warnings(item) as raised:
        outcome = _call_test_function(item, env, funcargs, settings)
    return dataclasses.replace(outcome, warnings=tuple(raised))


def _call_test_function(
    item: pytest.Function, env: DistEnv, funcargs: dict[str, Any], settings: DistSettings
) -> RankOutcome:
    args = {name: funcargs.get(name) for name in item._fixtureinfo.argnames}
    communicator = None
    try:
        if "dist_env" in args:
            args["dist_env"] = env
        if "communicator" in args:
            communicator = create_on_rank(item, env, settings)
            args["communicator"] = communicator
        if "communicator_factory" in args:
            args["communicator_factory"] = factory_on_rank(item, env, settings)
        item.obj(**args)
        outcome = RankOutcome(env.rank, "passed")
    except pytest.skip.Exception as exc:
        outcome = RankOutcome(env.rank, "skipped", exc.msg)
    except pytest.xfail.Exception as exc:
        outcome = RankOutcome(env.rank, "xfailed", exc.msg)
    except BaseException as exc:
        outcome = _test_failure(item, env.rank, exc)
    if communicator is not None:
        try:
            communicator.destroy()
        except BaseException as exc:
            if outcome.status == "passed":
                outcome = _test_failure(item, env.rank, exc)
    return outcome


def _bind_device(device: str, rank: int, world_size: int) -> torch.device:
    """Device `rank` (the local rank) of those visible; `world_size`: ranks on this node."""
    import torch

    if device == "cpu":
        return torch.device("cpu")
    # Only ranks touch the accelerator: a parent that initialised it could not fork working ranks.
    accelerator = getattr(torch, device)
    visible = accelerator.device_count() if accelerator.is_available() else 0
    if rank >= visible:
        hint = "CUDA_VISIBLE_DEVICES" if device == "cuda" else "ZE_AFFINITY_MASK"
        remedy = (
            f"run with --dist-world-size {visible} or fewer" if visible else "run on a machine that has one"
        )
        raise RankSetupError(
            f"world size {world_size} needs {device} device {rank} for rank {rank}, but {visible} "
            f"{device} device(s) are visible here ({hint}); {remedy}"
        )
    accelerator.set_device(rank)
    return torch.device(device, rank)


def _test_failure(item: pytest.Function, rank: int, exc: BaseException) -> RankOutcome:
    excinfo = pytest.ExceptionInfo.from_exception(exc)
    summary = excinfo.exconly().strip().splitlines()
    first_line = summary[0] if summary else type(exc).__name__
    # With several ranks in one report, pytest's default long tracebacks (whole torch functions) drown the
    # point: use short ones unless --tb asked for a style. `_repr_failure_py` is what repr_failure calls.
    style = "short" if item.config.getoption("tbstyle", "auto") == "auto" else None
    return RankOutcome(rank, "failed", first_line, str(item._repr_failure_py(excinfo, style=style)))


def _setup_failure(settings: DistSettings, rank: int, exc: BaseException) -> RankOutcome:
    first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
    # A RankSetupError says all there is to say; anything else is unexpected and keeps its traceback.
    detail = str(exc) if isinstance(exc, RankSetupError) else "".join(traceback.format_exception(exc))
    return RankOutcome(rank, "failed", f"could not set up the {settings.backend} rank: {first_line}", detail)
