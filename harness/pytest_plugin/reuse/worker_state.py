"""In a reuse worker: take on the pytest process's state for one test (`carried_state.py`), and return to the
worker's own base state after it, whatever the test body changed."""

from __future__ import annotations

import os
import random
import sys
import warnings
from typing import Any

from harness.pytest_plugin.rank_warnings import restore_session_filters
from harness.pytest_plugin.reuse.carried_state import (
    CarriedState,
    ForkTimeState,
    FreshMonkeyPatch,
    SeedCall,
    pending_accelerator_seeds,
)
from harness.pytest_plugin.reuse.process_switches import Switches


class WorkerState:
    """A worker's base state, taken once its process group is up, and the per-test apply/restore around it."""

    def __init__(
        self, fork_time: ForkTimeState, device: str, device_index: int | None, warning_filters: list[Any]
    ) -> None:
        import torch

        self._fork_time = fork_time
        self._warning_filters = warning_filters  # the session's
        self._switches = Switches()
        self._switch_base = self._switches.read()
        self._environ = dict(os.environ)
        self._cwd = os.getcwd()
        self._sys_path = list(sys.path)
        self._accelerator = getattr(torch, device) if device != "cpu" else None
        self._device = torch.device(device, device_index) if device != "cpu" else None
        self._device_index = device_index
        # The accelerator RNG after the worker's first CUDA/XPU call: torch applied the seeds queued at fork.
        self._accelerator_rng = (
            self._accelerator.get_rng_state(device_index) if self._accelerator is not None else None
        )
        self._accelerator_seeds = pending_accelerator_seeds(device)

    def apply(self, carried: CarriedState) -> None:
        """Before a test: what the pytest process had after the test's fixtures; the rest as at fork time."""
        import torch

        for name in carried.environ_unset:
            os.environ.pop(name, None)
        os.environ.update(carried.environ_set)
        if carried.cwd != self._cwd:
            os.chdir(carried.cwd)
        if carried.sys_path != sys.path:
            sys.path[:] = carried.sys_path
        random.seed()  # from the OS, as CPython's at-fork hook reseeds a fresh rank
        numpy_state = carried.numpy_random or self._fork_time.numpy_random
        if numpy_state is not None:
            import numpy

            numpy.random.set_state(numpy_state)
        cpu_rng = carried.torch_cpu_rng or self._fork_time.torch_cpu_rng
        torch.random.default_generator.set_state(torch.frombuffer(bytearray(cpu_rng), dtype=torch.uint8))
        self._apply_accelerator_seeds(carried.accelerator_seeds)
        _apply_torch_switches(carried.torch_switches)
        self._switches.write(carried.switches)
        if carried.warning_filters is not None:
            restore_session_filters(carried.warning_filters)  # as fixtures left them in pytest

    def restore(self) -> None:
        """After a test: the environment, working directory, `sys.path`, accelerator RNG, process switches and
        warning filters of the base."""
        environ = os.environ
        for name in [name for name in environ if name not in self._environ]:
            del environ[name]
        for name, value in self._environ.items():
            if environ.get(name) != value:
                environ[name] = value
        try:
            if os.getcwd() != self._cwd:
                os.chdir(self._cwd)
        except FileNotFoundError:  # the body removed the directory it moved into
            os.chdir(self._cwd)
        if sys.path != self._sys_path:
            sys.path[:] = self._sys_path
        if self._accelerator is not None:
            self._accelerator.set_rng_state(self._accelerator_rng, self._device_index)
        changed, _ = self._switches.changed(self._switch_base)
        self._switches.write({name: self._switch_base[name] for name in changed})
        if warnings.filters != self._warning_filters:
            restore_session_filters(self._warning_filters)

    def _apply_accelerator_seeds(self, seeds: tuple[SeedCall, ...] | None) -> None:
        """Seed the accelerator as a fresh rank would when torch replays the seeds queued in pytest."""
        if self._accelerator is None or seeds == self._accelerator_seeds or seeds is None:
            return  # restore() left the base state, which is what the queue at fork time gave
        import torch

        # A generator nobody seeded, as a fresh rank's is before torch replays the queue.
        self._accelerator.set_rng_state(torch.Generator(device=self._device).get_state(), self._device_index)
        for kind, seed in seeds:
            if kind == "all":
                self._accelerator.manual_seed_all(seed)
            else:
                self._accelerator.manual_seed(seed)


def with_fresh_monkeypatches(funcargs: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    """The fixture values with a new MonkeyPatch for each `FreshMonkeyPatch`; undo those after the body."""
    from _pytest.monkeypatch import MonkeyPatch

    patches = []
    for name, value in funcargs.items():
        if isinstance(value, FreshMonkeyPatch):
            funcargs[name] = MonkeyPatch()
            patches.append(funcargs[name])
    return funcargs, patches


def apply_instance_attributes(instance: object | None, attributes: dict[str, Any] | None) -> None:
    """A test method's `self` as the fixture methods left it in pytest (each test has its own instance)."""
    if instance is not None and attributes is not None:
        vars(instance).clear()
        vars(instance).update(attributes)


def _apply_torch_switches(switches: dict[str, Any]) -> None:
    import torch

    if torch.get_default_dtype() != switches["default_dtype"]:
        torch.set_default_dtype(switches["default_dtype"])
    enabled, warn_only = switches["deterministic"]
    warn_only_now = torch.is_deterministic_algorithms_warn_only_enabled()
    if (torch.are_deterministic_algorithms_enabled(), warn_only_now) != (enabled, warn_only):
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
    torch.set_grad_enabled(switches["grad_enabled"])
