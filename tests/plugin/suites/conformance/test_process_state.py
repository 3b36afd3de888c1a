"""Process-wide state that fixtures set outside the suite's own modules: attributes of standard-library
modules, torch's switches (C flags, threads, default device, config modules), numpy's options, warning
filters, the interpreter's limits, signal handlers, flush-denormal mode. Each test reads in its body what its
fixture set; the next one, that it is back."""

import json
import signal
import sys
import warnings

import numpy
import pytest
import torch
import torch._dynamo.config


@pytest.fixture
def json_marker():
    json.MARKER = 7
    yield
    del json.MARKER


def test_stdlib_module_attribute(dist_env, json_marker):
    assert json.MARKER == 7


def test_stdlib_module_attribute_is_back(dist_env):
    assert not hasattr(json, "MARKER")


@pytest.fixture
def numerics_switches():
    """What numerics suites set: each of these changes results on a GPU."""
    saved = (
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.backends.cuda.matmul.allow_tf32,
        torch.get_float32_matmul_precision(),
        torch.get_num_threads(),
    )
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.set_float32_matmul_precision("medium")
    torch.set_num_threads(1)
    yield
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[:2]
    torch.backends.cuda.matmul.allow_tf32 = saved[2]
    torch.set_float32_matmul_precision(saved[3])
    torch.set_num_threads(saved[4])


def test_torch_switches(dist_env, numerics_switches):
    assert torch.backends.cudnn.deterministic and torch.backends.cudnn.benchmark
    assert torch.backends.cuda.matmul.allow_tf32
    assert torch.get_float32_matmul_precision() == "medium"
    assert torch.get_num_threads() == 1


def test_torch_switches_are_back(dist_env):
    assert not torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert torch.get_float32_matmul_precision() == "highest"
    assert torch.get_num_threads() != 1 or torch.get_num_threads() == torch.get_num_interop_threads()


@pytest.fixture
def meta_default_device():
    torch.set_default_device("meta")
    yield
    torch.set_default_device(None)


def test_default_device(dist_env, meta_default_device):
    assert torch.empty(1).device.type == "meta"


def test_default_device_is_back(dist_env):
    assert torch.empty(1).device.type == "cpu"


@pytest.fixture
def dynamo_config():
    with torch._dynamo.config.patch(recompile_limit=3):
        yield


def test_dynamo_config(dist_env, dynamo_config):
    assert torch._dynamo.config.recompile_limit == 3


def test_dynamo_config_is_back(dist_env):
    assert torch._dynamo.config.recompile_limit != 3


@pytest.fixture
def numpy_options():
    with numpy.printoptions(precision=2), numpy.errstate(divide="raise"):
        yield


def test_numpy_options(dist_env, numpy_options):
    assert repr(numpy.array([1 / 3])) == "array([0.33])"
    with pytest.raises(FloatingPointError):
        numpy.array([1.0]) / 0


def test_numpy_options_are_back(dist_env):
    assert numpy.get_printoptions()["precision"] == 8 and numpy.geterr()["divide"] == "warn"


@pytest.fixture
def user_warnings_are_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        yield


def test_warning_filter(dist_env, user_warnings_are_errors):
    with pytest.raises(UserWarning):
        warnings.warn("from the body", UserWarning, stacklevel=1)


def test_warning_filter_is_back(dist_env):
    with warnings.catch_warnings(record=True) as log:
        warnings.simplefilter("always")
        warnings.warn("from the body", UserWarning, stacklevel=1)
    assert len(log) == 1


@pytest.fixture
def anomaly_and_recursion():
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(4321)
    with torch.autograd.set_detect_anomaly(True):
        yield
    sys.setrecursionlimit(limit)


def test_anomaly_mode_and_recursion_limit(dist_env, anomaly_and_recursion):
    assert torch.is_anomaly_enabled() and sys.getrecursionlimit() == 4321


@pytest.fixture
def inference_mode():
    with torch.inference_mode():
        yield


def test_inference_mode(dist_env, inference_mode):
    assert torch.is_inference_mode_enabled()


def test_inference_mode_is_back(dist_env):
    assert not torch.is_inference_mode_enabled() and not torch.is_anomaly_enabled()


@pytest.fixture
def flushed_denormals():
    torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(False)


def test_flush_denormal(dist_env, flushed_denormals):
    # No getter in torch: carried by the arithmetic it changes (where the CPU can flush at all).
    flushed = torch.tensor([1e-310], dtype=torch.float64).mul(1.0).item() == 0.0
    assert flushed or not torch.set_flush_denormal(True)


def test_flush_denormal_is_back(dist_env):
    assert torch.tensor([1e-310], dtype=torch.float64).mul(1.0).item() != 0.0


@pytest.fixture
def usr1_handler():
    previous = signal.signal(signal.SIGUSR1, lambda *_: None)
    yield
    signal.signal(signal.SIGUSR1, previous)


def test_signal_handler(dist_env, usr1_handler):
    # A handler does not pickle: detected, the test runs on fresh ranks, which inherit it.
    assert signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, signal.SIG_IGN)
