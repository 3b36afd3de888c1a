"""Backend resolution for every (platform, name) pair, checked against expectations written out here.

Plain pytest tests (no ranks). The expectations below are independent of communicators/backends.py on
purpose: a wrong table entry must fail here, not be copied into the expectation.
"""

from __future__ import annotations

import logging
import warnings

import pytest

from communicators import (
    PLATFORMS,
    All2AllBackendFallbackWarning,
    All2AllBackendWarning,
    DeprecatedAll2AllBackendWarning,
    RemovedAll2AllBackendWarning,
    UnknownAll2AllBackendError,
    resolve_all2all_backend,
    valid_all2all_backend_names,
)
from communicators import resolution as resolution_module

AGRS = "allgather_reducescatter"
# The names vLLM knows for CUDA only, and the Python package each needs.
CUDA_ONLY = {
    "deepep_high_throughput": "deep_ep",
    "deepep_low_latency": "deep_ep",
    "mori": "mori",
    "nixl_ep": "nixl_ep",
    "flashinfer_nvlink_two_sided": "flashinfer",
    "flashinfer_nvlink_one_sided": "flashinfer",
}
ALL_NAMES = [AGRS, "naive", *CUDA_ONLY, "flashinfer_all2allv", "pplx"]


def expected(platform: str, name: str, installed: bool) -> tuple[str, list[type[All2AllBackendWarning]]]:
    """What `name` must become on `platform`, and the warnings on the way, when libraries are `installed`."""
    if name == AGRS:
        return AGRS, []
    if name == "naive":
        return AGRS, [DeprecatedAll2AllBackendWarning]
    if name == "pplx":
        return AGRS, [RemovedAll2AllBackendWarning]
    deprecated = [DeprecatedAll2AllBackendWarning] if name == "flashinfer_all2allv" else []
    target = "flashinfer_nvlink_two_sided" if name == "flashinfer_all2allv" else name
    if platform == "cuda" and installed:
        return target, deprecated
    return AGRS, [*deprecated, All2AllBackendFallbackWarning]


def _resolve(platform: str, name: str) -> tuple[str, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        backend = resolve_all2all_backend(platform, name)
    return backend, caught


def test_the_table_knows_exactly_the_names_of_the_issue():
    assert sorted(valid_all2all_backend_names()) == sorted(ALL_NAMES)
    assert PLATFORMS == ("cpu", "cuda", "xpu")


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("name", ALL_NAMES)
def test_every_platform_and_name(platform, name, monkeypatch, caplog):
    for installed in (True, False):
        monkeypatch.setattr(resolution_module, "library_installed", lambda _module, answer=installed: answer)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="communicators"):
            backend, caught = _resolve(platform, name)
        want_backend, want_categories = expected(platform, name, installed)
        where = f"{name!r} on {platform}, libraries {'installed' if installed else 'missing'}"
        assert backend == want_backend, where
        assert [w.category for w in caught] == want_categories, where
        # Every warning is also logged, with the same text.
        assert [r.getMessage() for r in caplog.records] == [str(w.message) for w in caught], where
        for warning in caught:
            assert issubclass(warning.category, UserWarning)
            text = str(warning.message)
            assert name in text, f"{where}: the warning does not name {name!r}: {text}"
            if issubclass(warning.category, All2AllBackendFallbackWarning):
                assert platform in text and f"falling back to {AGRS!r}" in text, f"{where}: {text}"


@pytest.mark.parametrize("name", ["naive", "flashinfer_all2allv"])
def test_deprecated_alias_warning_names_the_alias_and_its_target(name, monkeypatch):
    monkeypatch.setattr(resolution_module, "library_installed", lambda _module: True)
    target = AGRS if name == "naive" else "flashinfer_nvlink_two_sided"
    with pytest.warns(DeprecatedAll2AllBackendWarning, match=rf"'{name}' is deprecated.*alias of '{target}'"):
        resolve_all2all_backend("cuda", name)


@pytest.mark.parametrize("name", sorted(CUDA_ONLY))
def test_missing_library_on_cuda_falls_back_naming_the_library(name, monkeypatch):
    monkeypatch.setattr(resolution_module, "library_installed", lambda _module: False)
    library = CUDA_ONLY[name]
    with pytest.warns(All2AllBackendFallbackWarning, match=rf"'{name}' needs the Python package '{library}'"):
        assert resolve_all2all_backend("cuda", name) == AGRS


def test_library_check_does_not_import_the_library():
    assert resolution_module.library_installed("json") is True
    assert resolution_module.library_installed("no_such_module_for_comm_harness") is False


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("name", ["deepep", "Naive", "allgather-reducescatter", "", "pplx_kernels"])
def test_unknown_name_raises_on_every_platform_listing_valid_names(platform, name):
    with pytest.raises(UnknownAll2AllBackendError) as error:
        resolve_all2all_backend(platform, name)
    assert isinstance(error.value, ValueError)
    text = str(error.value)
    assert f"Unknown all2all backend {name!r}" in text
    for valid in ALL_NAMES:
        assert valid in text, f"the error does not list {valid!r}: {text}"


def test_unknown_name_suggests_the_closest_valid_one():
    with pytest.raises(ValueError, match="Did you mean 'allgather_reducescatter'"):
        resolve_all2all_backend("cpu", "allgather_reduce_scatter")


def test_a_name_that_is_not_a_string_is_an_unknown_name():
    with pytest.raises(UnknownAll2AllBackendError, match="Unknown all2all backend None"):
        resolve_all2all_backend("cpu", None)


def test_unknown_platform_raises_listing_platforms():
    with pytest.raises(ValueError, match="Unknown platform 'tpu'.*cpu, cuda, xpu"):
        resolve_all2all_backend("tpu", AGRS)
