"""Adapters: found by name, what a known gap covers, the vLLM gap table against the suite, cells' options.

Plain pytest tests: nothing here imports vLLM (the vLLM cells run the suite itself, examples/vllm/).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.adapters.base import CommunicatorAdapter, KnownGap, TargetPlatform
from harness.adapters.gap_file import load_known_gaps, versions_in
from harness.adapters.registry import (
    BUILTIN_ADAPTERS,
    BrokenAdapterError,
    UnknownCommunicatorError,
    load_adapter,
)
from harness.adapters.vllm import ADAPTER as VLLM
from harness.adapters.vllm import DEFAULT_GAP_FILE
from harness.cell.runner import build_pytest_command
from harness.config.model import Cell

REPO = Path(__file__).resolve().parents[2]


def test_built_in_adapters_load_without_importing_their_engine():
    for name in BUILTIN_ADAPTERS:
        adapter = load_adapter(name)
        assert isinstance(adapter, CommunicatorAdapter)
        assert adapter.name == name
    result = subprocess.run(
        [sys.executable, "-c", "import sys; import harness.adapters.vllm; print('vllm' in sys.modules)"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    assert result.stdout.strip() == "False"


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(UnknownCommunicatorError, match="'nosuch'; known: comm-harness, vllm"):
        load_adapter("nosuch")


def test_an_entry_point_to_something_else_is_a_broken_adapter(monkeypatch):
    monkeypatch.setitem(BUILTIN_ADAPTERS, "broken", "harness.common.errors:EXIT_OK")
    with pytest.raises(BrokenAdapterError, match="'broken' .*is a int, not an adapter"):
        load_adapter("broken")
    monkeypatch.setitem(BUILTIN_ADAPTERS, "missing", "no_such_module_here:ADAPTER")
    with pytest.raises(BrokenAdapterError, match="'missing' .*does not load"):
        load_adapter("missing")


class PromisingAdapter:
    name, description, known_gaps = "promising", "promises what no test checks", ()
    promises = frozenset({"all_reduce_inplace"})

    def platforms(self, device):
        return (TargetPlatform(device),)

    def preload(self):
        pass

    def create(self, env, platform, all2all_backend, group=None):
        raise AssertionError("not created")

    def version(self):
        return None


PROMISING = PromisingAdapter()


def test_a_promise_no_test_checks_is_a_broken_adapter(monkeypatch):
    # A misspelt promise would otherwise skip its test as "not promised", silently.
    monkeypatch.setitem(BUILTIN_ADAPTERS, "promising", f"{__name__}:PROMISING")
    with pytest.raises(
        BrokenAdapterError,
        match="promises 'all_reduce_inplace', which no test checks; .*: all_reduce_in_place",
    ):
        load_adapter("promising")


def test_platform_ids_and_emulation_labels():
    assert (TargetPlatform("cpu").id, TargetPlatform("cpu").emulation_label) == ("cpu", None)
    xpu = TargetPlatform("xpu", emulated_on="cpu")
    assert (xpu.id, xpu.emulation_label) == ("xpu_emulated", "xpu-on-gloo")


def test_a_gap_covers_its_tests_platforms_and_world_sizes_only():
    gap = KnownGap("test_gather_*", ("xpu_emulated",), "why", match="Gloo", world_sizes=(2,))
    assert gap.applies_to("test_gather_returns[x]", "xpu_emulated", 2)
    assert not gap.applies_to("test_gather_returns[x]", "cpu", 2)
    assert not gap.applies_to("test_gather_returns[x]", "xpu_emulated", 4)
    assert not gap.applies_to("test_all_gather", "xpu_emulated", 2)
    assert gap.explains("rank 0 of 2 failed: RuntimeError: ProcessGroupGloo::allgather")
    assert not gap.explains("rank 0 of 2 failed: ValueError")
    assert KnownGap("t", ("cpu",), "any failure").explains("anything")


def test_vllm_runs_cpu_and_emulates_xpu_and_cuda_on_cpu_only():
    assert [p.id for p in VLLM.platforms("cpu")] == ["cpu", "xpu_emulated", "cuda_emulated"]
    assert VLLM.platforms("cuda") == () and VLLM.platforms("xpu") == ()


def _suite_test_names() -> set[str]:
    """Every test name of tests/communicators (default target: no platform ids), from pytest's collection."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/communicators",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return {line.split("::")[-1] for line in done.stdout.splitlines() if "::" in line}


def test_every_vllm_gap_of_every_version_is_well_formed_and_covers_a_test_of_the_suite():
    names = _suite_test_names()
    platforms = {p.id for p in VLLM.platforms("cpu")}
    versions = versions_in(DEFAULT_GAP_FILE)
    assert {"0.19.1", "0.20.0", "0.33.0", "0.34.0"} <= set(versions)
    for version in versions:
        gaps = load_known_gaps(DEFAULT_GAP_FILE, version)
        for gap in gaps:
            assert gap.reason and set(gap.platforms) <= platforms, gap
            assert gap.defect in ("vllm", "torch"), f"{version} {gap.test}: defect {gap.defect!r}"
            assert gap.match, f"{version} {gap.test}: a vLLM gap records the failure it expects (match=)"
            re.compile(gap.match)
            covered = [name for name in names if gap.applies_to(name, gap.platforms[0], 2)]
            assert covered, (
                f"{version}: gap {gap.test!r} covers no test of tests/communicators: a stale entry"
            )
        assert any("#57837" in gap.reason for gap in gaps), version


def test_a_communicator_axis_becomes_the_plugin_option(tmp_path):
    cell = Cell(
        "cpu-gloo-ws2-vllm", "cpu", "gloo", 2, ("tests/communicators",), params={"communicator": "vllm"}
    )
    command = build_pytest_command(cell, tmp_path, load_plugin=False)
    assert command[command.index("--dist-communicator") + 1] == "vllm"
    plain = Cell("cpu-gloo-ws2", "cpu", "gloo", 2, ("tests/communicators",))
    assert "--dist-communicator" not in build_pytest_command(plain, tmp_path, load_plugin=False)
