"""What reuse workers take from the pytest process before each test, so that the body sees what fork mode's
fresh ranks would have inherited: the environment, the working directory, `sys.path`, torch's and numpy's RNG
states, torch's default dtype, deterministic and grad switches, the settable switches of
`process_switches.py` and the warning filters, as fixtures (autouse ones included) left them.

Python's `random` is not carried: CPython reseeds it from the OS in every forked child, so a fresh rank never
sees a fixture's `random.seed`; a worker reseeds it before each test the same way.

`capture` runs in the pytest process; the worker applies the result (`worker_state.py`). State that cannot
be carried this way is found by `uncarried.py`, and such a test runs on fresh ranks.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from typing import Any

SeedCall = tuple[str, int]  # ("all", seed): manual_seed_all; ("current", seed): manual_seed


@dataclass(frozen=True)
class ForkTimeState:
    """The pytest process's state when the workers were forked: what they inherited, the base of each diff."""

    environ: dict[bytes, bytes]
    numpy_random: Any  # None when numpy was not imported
    torch_cpu_rng: bytes
    accelerator_seeds: tuple[SeedCall, ...] | None  # None: the lazy seed calls could not be read


@dataclass(frozen=True)
class CarriedState:
    """The differences a test's fixtures made, as the worker applies them; None means 'as at fork time'."""

    environ_set: dict[str, str]
    environ_unset: tuple[str, ...]
    cwd: str
    sys_path: list[str]
    numpy_random: Any
    torch_cpu_rng: bytes | None
    accelerator_seeds: tuple[SeedCall, ...] | None
    torch_switches: dict[str, Any]
    instance_attributes: dict[str, Any] | None  # a test method's `self.__dict__`, set by fixture methods
    # process_switches.py: the settable switches fixtures changed since the fork, by probe name.
    switches: dict[str, Any]
    # warnings.filters as fixtures left them, None when they did not change them (pytest's own are set in the
    # worker for each test, as in a fresh rank).
    warning_filters: list[Any] | None


class FreshMonkeyPatch:
    """Sent in place of a `monkeypatch` value (which holds os.environ and does not pickle): the worker gives
    the body a new MonkeyPatch and undoes it after. What fixtures set through it is carried or detected."""


def take_fork_time_state(device: str) -> ForkTimeState:
    """Called just before the workers are forked: what each of them inherits."""
    return ForkTimeState(
        environ=_raw_environ(),
        numpy_random=_numpy_state(),
        torch_cpu_rng=_torch_cpu_rng(),
        accelerator_seeds=pending_accelerator_seeds(device),
    )


def capture(
    base: ForkTimeState,
    device: str,
    instance: object | None,
    switches: dict[str, Any],
    filters_before_fixtures: list[Any] | None,
) -> CarriedState:
    """The pytest process's state now, after the test's fixtures were set up, relative to `base`.

    `switches`: the settable process switches that differ from the fork; `filters_before_fixtures`: the
    warning filters when the test's set-up began (pytest's for the test), None when not known.
    """
    filters = list(warnings.filters)
    environ = _raw_environ()
    changed = environ.items() - base.environ.items()
    numpy_random = _numpy_state()
    torch_cpu_rng = _torch_cpu_rng()
    return CarriedState(
        environ_set={os.fsdecode(key): os.fsdecode(value) for key, value in changed},
        environ_unset=tuple(os.fsdecode(key) for key in base.environ.keys() - environ.keys()),
        cwd=os.getcwd(),
        sys_path=list(sys.path),
        numpy_random=None if _same_numpy_state(numpy_random, base.numpy_random) else numpy_random,
        torch_cpu_rng=None if torch_cpu_rng == base.torch_cpu_rng else torch_cpu_rng,
        accelerator_seeds=pending_accelerator_seeds(device),
        torch_switches=torch_switches(),
        instance_attributes=dict(vars(instance)) if instance is not None else None,
        switches=switches,
        warning_filters=None if filters == filters_before_fixtures else filters,
    )


def torch_switches() -> dict[str, Any]:
    """Torch's process-wide switches a fixture may flip: a fork inherits them, a worker must be told."""
    import torch

    return {
        "default_dtype": torch.get_default_dtype(),
        "deterministic": (
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
        ),
        "grad_enabled": torch.is_grad_enabled(),
    }


def pending_accelerator_seeds(device: str) -> tuple[SeedCall, ...] | None:
    """The seeds torch will apply when CUDA/XPU initialises in a fork of this process, in order.

    The pytest process never initialises the accelerator, so `torch.manual_seed` (in a fixture, say) only
    queues the accelerator's seeding: a fresh rank applies it at its first CUDA call, a worker must be told.
    None when torch's queue holds something this function cannot read (a test then runs on fresh ranks).
    """
    if device == "cpu":
        return ()
    import torch

    tracker = getattr(getattr(torch, device, None), "_lazy_seed_tracker", None)
    if tracker is None:
        return ()
    seeds: list[SeedCall] = []
    for call in tracker.get_calls():
        if call is None:
            continue
        callback = call[0]
        kind = {"manual_seed_all": "all", "manual_seed": "current"}.get(
            callback.__qualname__.removesuffix(".<locals>.cb")
        )
        names = callback.__code__.co_freevars
        if kind is None or "seed" not in names:
            return None
        seeds.append((kind, int(callback.__closure__[names.index("seed")].cell_contents)))
    return tuple(seeds)


def _raw_environ() -> dict[bytes, bytes]:
    # The encoded mapping os.environ keeps: copied in microseconds, where decoding every entry costs tens.
    data = getattr(os.environ, "_data", None)
    if isinstance(data, dict):
        return dict(data)
    return {os.fsencode(key): os.fsencode(value) for key, value in os.environ.items()}


def _numpy_state() -> Any:
    numpy = sys.modules.get("numpy")
    if numpy is None:
        return None  # a fork that imports numpy later seeds it from the OS, as a worker's import did
    return numpy.random.get_state(legacy=False)


def _same_numpy_state(state: Any, base: Any) -> bool:
    if state is None or base is None:
        return state is base
    import numpy

    return (
        state["state"]["pos"] == base["state"]["pos"]
        and numpy.array_equal(state["state"]["key"], base["state"]["key"])
        and state["has_gauss"] == base["has_gauss"]
        and state["gauss"] == base["gauss"]
    )


def _torch_cpu_rng() -> bytes:
    import torch

    state = torch.random.default_generator.get_state()
    try:
        return bytes(state.numpy())  # microseconds; pickling the tensor costs a millisecond or more
    except RuntimeError:  # torch without numpy
        return bytes(state.tolist())
