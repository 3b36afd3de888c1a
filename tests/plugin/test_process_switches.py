"""Every process switch `process_switches.py` enumerates, one test each: a fixture-like change to it in the
pytest process is carried to a reuse worker (found as changed, its value pickled and set there) or, for a
switch with no setter, detected, so that the test goes to fresh ranks; and the worker's restore after the
test puts it back. The switch list is enumerated as the plugin does it (torch's own `torch._C._get_*`
getters, ...), so a switch a new torch adds gets a test here, and fails it until `_CHANGES` says how a
fixture changes it.

Unit level: the pytest process and the worker are the same forked child of this one (a switch changed here
would leak into the tests after), running the functions the plugin runs on each side. Real ranks for a
representative few: tests/plugin/suites/conformance/test_process_state.py."""

from __future__ import annotations

import os
import pickle
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any

import numpy  # noqa: F401  imported: its options are probed too
import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from harness.pytest_plugin.reuse import process_switches
from harness.pytest_plugin.reuse.process_switches import Switches

_SKIPPED = 3  # a child's exit code: this torch build does not let the switch change


class _Finder:
    """An import hook a fixture might install (sys.meta_path, sys.path_hooks)."""

    def find_spec(self, *args: Any) -> None:
        return None

    def __call__(self, path: str) -> None:
        raise ImportError(path)


_ENTERED: list[Any] = []  # context managers a "fixture" entered: their guards end when collected


def _enter(context: Any) -> None:
    _ENTERED.append(context)
    context.__enter__()


def _on_usr1(signum: int, frame: Any) -> None:
    """A signal handler a fixture might install."""


def _config_option(name: str) -> Callable[[], None]:
    """A torch config module's first boolean option, set away from its default."""

    def change() -> None:
        module = sys.modules[name.removesuffix(" options")]
        key = next(k for k, entry in sorted(module._config.items()) if isinstance(entry.default, bool))
        setattr(module, key, not module._config[key].default)

    return change


def _set(name: str, value: Any) -> None:
    probe = next(p for p in Switches().probes if p.name == name)
    assert probe.write is not None
    probe.write(value)


def _other_member(value: Any) -> Any:
    return next(member for member in type(value).__members__.values() if member != value)


# A new value for the switch's setter, from its value now. Switches whose values are booleans (or tuples of
# them), enum members or fp32 precisions need no entry.
_NEW_VALUE: dict[str, Callable[[Any], Any]] = {
    "sys.getrecursionlimit()": lambda v: v + 100,
    "sys.getswitchinterval()": lambda v: v * 2,
    "sys.get_int_max_str_digits()": lambda v: v + 1000,
    "gc.get_threshold()": lambda v: (v[0] + 1, *v[1:]),
    "os.umask()": lambda v: 0o077 if v != 0o077 else 0o022,
    "locale.setlocale()": lambda v: "C.UTF-8" if v == "C" else "C",
    "numpy.geterr()": lambda v: {**v, "divide": "raise" if v["divide"] != "raise" else "ignore"},
    "numpy.get_printoptions()": lambda v: {**v, "precision": v["precision"] + 1},
    "numpy.getbufsize()": lambda v: v * 2,
    "numpy.geterrcall()": lambda v: print,
    "torch._C._get_autograd_fallback_mode()": lambda v: "nothing" if v != "nothing" else "warn",
    "torch._C._get_cudnn_depthwise_kernel()": lambda v: "native" if v != "native" else "cudnn",
    "torch._C._get_float32_matmul_precision()": lambda v: "medium" if v != "medium" else "highest",
    "torch._C._get_graph_exec_group()": lambda v: 1 if v != 1 else 2,
    "torch._C._get_onednn_allow_tf32()": lambda v: not v,
    "torch._C._get_sdp_priority_order()": lambda v: list(reversed(v)),
    "torch._C._get_sm_carveout_experimental()": lambda v: 8 if v != 8 else 16,
    "torch.get_num_threads()": lambda v: 1 if v != 1 else 2,
    "torch.get_default_device()": lambda v: "meta",
    "torch.is_anomaly_enabled()": lambda v: (not v[0], v[1]),
    "torch.set_printoptions": lambda v: {**v, "precision": v["precision"] + 1},
}
# What a fixture does, for switches changed through another API than the probe's setter, or with none.
_FIXTURE_DOES: dict[str, Callable[[], Any]] = {
    "torch._C._get_qengine()": lambda: setattr(
        torch.backends.quantized,
        "engine",
        next(e for e in torch.backends.quantized.supported_engines if e != torch.backends.quantized.engine),
    ),
    "torch.get_num_interop_threads()": lambda: torch.set_num_interop_threads(
        torch.get_num_interop_threads() + 1
    ),
    "torch.is_inference_mode_enabled()": lambda: _enter(torch.inference_mode()),
    "torch-function modes": lambda: TorchFunctionMode().__enter__(),
    "torch dispatch modes": lambda: TorchDispatchMode().__enter__(),
    "sys.meta_path": lambda: sys.meta_path.insert(0, _Finder()),
    "sys.path_hooks": lambda: sys.path_hooks.insert(0, _Finder()),
    "signal handlers": lambda: signal.signal(signal.SIGUSR1, _on_usr1),
}


def _probe_names() -> list[str]:
    return [probe.name for probe in Switches().probes]


def _change(name: str, value: Any) -> Callable[[], None]:
    """What a fixture does to the switch `name`, whose value is `value` now."""
    if name.endswith(" options"):  # a torch config module: its options set away from the defaults
        return _config_option(name)
    if name in _FIXTURE_DOES:
        return _FIXTURE_DOES[name]
    if name in _NEW_VALUE:
        new = _NEW_VALUE[name](value)
        return lambda: _set(name, new)
    if isinstance(value, bool):
        return lambda: _set(name, not value)
    if isinstance(value, tuple) and value and all(isinstance(v, bool) for v in value):
        return lambda: _set(name, (not value[0], *value[1:]))
    if hasattr(type(value), "__members__"):
        return lambda: _set(name, _other_member(value))
    if name.startswith("torch.backends fp32_precision"):
        return lambda: _set(name, "ieee" if value != "ieee" else "tf32")
    raise AssertionError(f"{name} = {value!r}: say in _CHANGES how a fixture changes this switch")


def _in_forked_child(body: Callable[[], None]) -> None:
    """Run `body` in a fork of this process: its changes to process state stay there."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        code = 0
        try:
            body()
        except _CannotChange as exc:
            os.write(write, str(exc).encode())
            code = _SKIPPED
        except BaseException:
            os.write(write, traceback.format_exc().encode())
            code = 1
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        said = pipe.read().decode()
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if code == _SKIPPED:
        pytest.skip(said)
    assert code == 0, said or f"the child exited with {code}"


class _CannotChange(Exception):
    """This torch build keeps the switch at one value (a backend it was built without)."""


@pytest.mark.parametrize("name", _probe_names())
def test_a_fixture_changing_the_switch_is_carried_or_detected_and_reset_after(name: str) -> None:
    def pytest_process_then_worker() -> None:
        # The pytest process: the switches at the workers' fork, then a fixture changes one.
        parent = Switches()
        probe = next(p for p in parent.probes if p.name == name)
        base = parent.read()
        try:
            _change(name, base[name])()
        except (RuntimeError, ValueError) as exc:
            raise _CannotChange(f"{name}: {exc}") from None
        changed = parent.read()[name]
        if changed == base[name]:
            raise _CannotChange(f"{name}: its setter leaves it at {changed!r} on this torch build")
        settable, detected = parent.changed(base)
        if probe.write is None:
            assert name in detected and name not in settable, (settable, detected)
            return  # payload() sends the test to fresh ranks, which inherit the change
        assert settable.get(name) == changed and name not in detected, (settable, detected)
        sent = pickle.loads(pickle.dumps(settable))  # as CarriedState crosses to the worker
        # The worker: back at its base (as forked), takes the carried value, runs the test, restores.
        worker = Switches()
        worker.write({name: base[name]})
        assert worker.read()[name] == base[name]
        worker.write(sent)
        assert worker.read()[name] == changed, "the carried value did not take"
        still_changed, _ = worker.changed(base)
        worker.write({switch: base[switch] for switch in still_changed})  # WorkerState.restore
        assert worker.read()[name] == base[name], "the worker's restore did not put it back"
        assert worker.changed(base) == ({}, []), "the restore left other switches changed"

    _in_forked_child(pytest_process_then_worker)


def test_every_torch_getter_with_a_setter_is_a_probe_or_named_as_none() -> None:
    """The enumeration keeps only values it can compare and carry: a switch dropped by that filter (a new
    torch returning a new type) must show up here, not silently go uncarried."""
    probes = set(_probe_names())
    dropped = []
    for getter in sorted(dir(torch._C)):
        if not getter.startswith("_get_") or getter in process_switches._NOT_SWITCHES:
            continue
        setter = process_switches._SETTER_OF.get(getter, "_set_" + getter[len("_get_") :])
        if not hasattr(torch._C, setter):
            continue
        try:
            getattr(torch._C, getter)()
        except Exception:  # needs arguments: no switch a fixture flips as such
            continue
        if f"torch._C.{getter}()" not in probes:
            dropped.append(getter)
    assert not dropped, f"torch getters with setters that are not probes: {dropped}"
