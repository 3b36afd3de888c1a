"""Process-wide switches that live outside any module's attributes (in C, in context variables, in objects
changed in place), read the same way in the pytest process and in a reuse worker.

A fork-mode rank inherits them as the test's fixtures left them; a reuse worker must be told. Each switch is a
probe: a name, a getter, and a setter where one exists. The pytest process reads every probe at the workers'
fork and again after a test's fixtures; a switch that changed is carried when it has a setter and its value
pickles, and sends the test to fresh ranks when not. A worker puts every settable switch back to its own base
after each test, whatever the body did.

torch's C switches are enumerated from torch's own getters (`torch._C._get_*` that take no argument), each set
with its `torch._C._set_*` twin; plus the Python-level ones (threads, default device, anomaly mode, inference
mode, torch-function and dispatch modes, print options, the `torch._dynamo`/`_inductor`/... config modules),
numpy's error, print and buffer options, and the interpreter's (recursion limit, switch interval, int digits
limit, gc, umask, locale, import hooks, signal handlers, the CPU's flush-denormal mode).
"""

from __future__ import annotations

import _signal  # not signal: its getsignal wraps each answer in an enum (285 us for all signals, not 4)
import gc
import locale
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Probe:
    name: str  # what the report names, e.g. "torch._C._get_cudnn_benchmark()"
    read: Callable[[], Any]
    write: Callable[[Any], None] | None = None  # None: detected only


# torch getters that are no fixture's switch: constants, caches, counters, or state the rank itself sets.
_NOT_SWITCHES = {
    "_get_DTensor_sharding_propagator_cache_stats",
    "_get_accelerator",
    "_get_all_dtypes",
    "_get_blas_default_backend",
    "_get_caught_jit_exception_class_name",
    "_get_caught_jit_exception_original_msg",
    "_get_cpu_capability",
    "_get_default_device",  # torch.get_default_device() below: set in Python, as a torch-function mode
    "_get_deterministic_algorithms",  # carried with carried_state.torch_switches
    "_get_deterministic_algorithms_warn_only",
    "_get_max_operator_version",
    "_get_operator_version_map",
    "_get_privateuse1_backend_name",
    "_get_thread_name",
    "_get_tracing_state",
    "_get_upgraders_entry_map",
    "_get_upgraders_map_size",
    "_get_version_calculator_flag",
}
_SETTER_OF = {  # getters whose setter is not named after them
    "_get_flash_sdp_enabled": "_set_sdp_use_flash",
    "_get_mem_efficient_sdp_enabled": "_set_sdp_use_mem_efficient",
    "_get_math_sdp_enabled": "_set_sdp_use_math",
    "_get_cudnn_sdp_enabled": "_set_sdp_use_cudnn",
    "_get_overrideable_sdp_enabled": "_set_sdp_use_overrideable",
    "_get_fa3_sdp_enabled": "_set_sdp_use_fa3",
}
_FP32_PRECISION = [
    (backend, op)
    for backend, ops in (
        ("generic", ("all",)),
        ("cuda", ("all", "matmul", "conv", "rnn")),
        ("mkldnn", ("all", "matmul", "conv", "rnn")),
    )
    for op in ops
]
_SIMPLE = (bool, int, float, str, type(None))


def _torch_probes() -> list[Probe]:
    import torch
    import torch.utils._device  # noqa: F401  torch.get_default_device imports it: now, before the fork

    probes = []
    for name in sorted(dir(torch._C)):
        if not name.startswith("_get_") or name in _NOT_SWITCHES:
            continue
        getter = getattr(torch._C, name)
        try:
            value = getter()
        except Exception:  # needs arguments, or a device this build lacks
            continue
        if not isinstance(value, (*_SIMPLE, tuple, list)) and not hasattr(type(value), "__members__"):
            continue
        setter = getattr(torch._C, _SETTER_OF.get(name, "_set_" + name[len("_get_") :]), None)
        write = None if setter is None else (lambda v, s=setter: s(*v) if isinstance(v, tuple) else s(v))
        probes.append(Probe(f"torch._C.{name}()", getter, write))
    for backend, op in _FP32_PRECISION:
        try:
            torch._C._get_fp32_precision_getter(backend, op)
        except Exception:
            continue
        probes.append(
            Probe(
                f"torch.backends fp32_precision ({backend}, {op})",
                lambda b=backend, o=op: torch._C._get_fp32_precision_getter(b, o),
                lambda v, b=backend, o=op: torch._C._set_fp32_precision_setter(b, o, v),
            )
        )
    probes += [
        Probe("torch.get_num_threads()", torch.get_num_threads, torch.set_num_threads),
        # Settable only before any parallel work has run, which a worker has done.
        Probe("torch.get_num_interop_threads()", torch.get_num_interop_threads),
        Probe(
            "torch.get_default_device()", lambda: str(torch.get_default_device()), torch.set_default_device
        ),
        Probe(
            "torch.is_anomaly_enabled()",
            lambda: (torch.is_anomaly_enabled(), torch.is_anomaly_check_nan_enabled()),
            lambda v: torch.autograd.set_detect_anomaly(*v),
        ),
        Probe("torch.is_inference_mode_enabled()", torch.is_inference_mode_enabled),
        Probe("torch-function modes", _torch_function_modes),
        Probe("torch dispatch modes", lambda: torch._C._len_torch_dispatch_stack()),
        # torch.set_flush_denormal has no getter: read it off the arithmetic it changes (in this thread, as
        # the setter sets it in this thread only: a worker's pool threads keep theirs, a fresh rank's new
        # ones inherit the main thread's).
        Probe("torch.set_flush_denormal()", _denormals_flushed, torch.set_flush_denormal),
        Probe(
            "torch.set_printoptions",
            lambda: dict(vars(torch._tensor_str.PRINT_OPTS)),
            lambda v: vars(torch._tensor_str.PRINT_OPTS).update(v),
        ),
    ]
    probes += [_config_probe(module) for module in _config_modules()]
    return probes


def _torch_function_modes() -> tuple[str, ...]:
    """The torch-function modes on the stack but the default device's (carried as the default device)."""
    import torch

    modes = (torch._C._get_function_stack_at(i) for i in range(torch._C._len_torch_function_stack()))
    return tuple(type(mode).__qualname__ for mode in modes if type(mode).__name__ != "DeviceContext")


def _denormals_flushed() -> bool:
    half_of_smallest = sys.float_info.min / 2.0  # a denormal, unless the CPU flushes it to zero
    return half_of_smallest == 0.0


def _config_modules() -> list[Any]:
    config_module = sys.modules.get("torch.utils._config_module")
    kind = getattr(config_module, "ConfigModule", None)
    if kind is None:
        return []
    return sorted((m for m in list(sys.modules.values()) if isinstance(m, kind)), key=lambda m: m.__name__)


def _config_probe(module: Any) -> Probe:
    """A torch config module (torch._dynamo.config, ...): its options set away from their defaults. Its
    attribute assignments go to context variables, not to the module's dict: the module watch misses them."""

    def read() -> dict[str, Any]:
        try:
            values = module._get_dict(skip_default=True, readonly_values=True)
        except Exception:  # an older torch: the whole configuration, slower
            return module.get_config_copy()
        # An option set back to its default (as `config.patch` does on exit) still counts as set there.
        return {key: value for key, value in values.items() if not _at_default(module._config[key], value)}

    def write(values: dict[str, Any]) -> None:
        for key in read().keys() - values.keys():
            setattr(module, key, module._config[key].default)
        for key, value in values.items():
            setattr(module, key, value)

    return Probe(f"{module.__name__} options", read, write)


def _at_default(entry: Any, value: Any) -> bool:
    unset = sys.modules["torch.utils._config_module"]._UNSET_SENTINEL
    environment = (entry.env_value_default, entry.env_value_force)
    return value == entry.default and all(v is unset or v == entry.default for v in environment)


def _numpy_probes() -> list[Probe]:
    numpy = sys.modules.get("numpy")
    if numpy is None:  # imported later: a fork that imports it gets its defaults, as a worker does
        return []
    return [
        Probe("numpy.geterr()", numpy.geterr, lambda v: numpy.seterr(**v)),
        Probe("numpy.get_printoptions()", numpy.get_printoptions, lambda v: numpy.set_printoptions(**v)),
        Probe("numpy.getbufsize()", numpy.getbufsize, numpy.setbufsize),
        Probe("numpy.geterrcall()", numpy.geterrcall, numpy.seterrcall),
    ]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_SIGNALS = sorted(map(int, _signal.valid_signals()))


def _signal_handlers() -> tuple[tuple[int, str], ...]:
    """The Python-level handler of every signal that has one set: named by function, not by identity, as
    pytest plugins (pytest-timeout) install a new closure of one function around every test. A handler's
    function does not pickle in general: detected only."""
    handlers = []
    for number in _SIGNALS:
        handler = _signal.getsignal(number)
        if callable(handler):
            handlers.append((number, f"{getattr(handler, '__module__', '')}.{handler.__qualname__}"))
    return tuple(handlers)


def _interpreter_probes() -> list[Probe]:
    return [
        Probe("sys.getrecursionlimit()", sys.getrecursionlimit, sys.setrecursionlimit),
        Probe("sys.getswitchinterval()", sys.getswitchinterval, sys.setswitchinterval),
        Probe("sys.get_int_max_str_digits()", sys.get_int_max_str_digits, sys.set_int_max_str_digits),
        Probe("gc.isenabled()", gc.isenabled, lambda v: gc.enable() if v else gc.disable()),
        Probe("gc.get_threshold()", gc.get_threshold, lambda v: gc.set_threshold(*v)),
        Probe("os.umask()", _umask, os.umask),
        Probe(
            "locale.setlocale()",
            lambda: locale.setlocale(locale.LC_ALL),
            lambda v: locale.setlocale(locale.LC_ALL, v),
        ),
        Probe("sys.meta_path", lambda: tuple(map(id, sys.meta_path))),
        Probe("sys.path_hooks", lambda: tuple(map(id, sys.path_hooks))),
        Probe("signal handlers", _signal_handlers),
    ]


class Switches:
    """The probes of this process, built once torch (and numpy, if at all) are imported."""

    def __init__(self) -> None:
        self.probes = [*_interpreter_probes(), *_numpy_probes()]
        if "torch" in sys.modules:
            self.probes += _torch_probes()
        self._by_name = {probe.name: probe for probe in self.probes}
        self._names = tuple(self._by_name)
        self._readers = tuple(probe.read for probe in self.probes)

    def read(self) -> dict[str, Any]:
        """Every switch's value by probe name; a switch that cannot be read now has its error as its value."""
        return dict(zip(self._names, self._readings(), strict=True))

    def changed(self, base: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """(settable switches that differ from `base`, with their values; those that cannot be set)."""
        readings = self._readings()
        # Run three times per test (twice here, once in each worker): nothing changed is one tuple comparison.
        if tuple(base) == self._names and tuple(base.values()) == readings:
            return {}, []
        settable: dict[str, Any] = {}
        detected: list[str] = []
        for name, value in zip(self._names, readings, strict=True):
            if name in base and base[name] == value:
                continue
            if self._by_name[name].write is None:
                detected.append(name)
            else:
                settable[name] = value
        return settable, detected

    def write(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            probe = self._by_name.get(name)
            if probe is not None and probe.write is not None:
                probe.write(value)

    def _readings(self) -> tuple[Any, ...]:
        try:
            return tuple(read() for read in self._readers)
        except Exception:  # some switch cannot be read now: read each apart, an error as its reading
            return tuple(map(_reading, self._readers))


def _reading(read: Callable[[], Any]) -> Any:
    try:
        return read()
    except Exception as exc:  # a switch that cannot be read now: its reading is its error
        return f"<unreadable: {type(exc).__name__}>"
