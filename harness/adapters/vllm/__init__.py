"""The vLLM adapter: a vLLM release's own device communicators (0.19.1 to 0.34.0) under the conformance suite.

`--dist-communicator vllm` runs its CpuCommunicator natively and the logic of its XpuCommunicator and
CudaCommunicator emulated on cpu/gloo (test ids `[xpu_emulated]`, `[cuda_emulated]`; JUnit property
`emulated=xpu-on-gloo`/`cuda-on-gloo`), with dispatch/combine through its AgRsAll2AllManager in vLLM's own
parallel state. vLLM is imported only when this adapter is chosen, and only on cpu: its wheel pins a CUDA
torch that the GPU hosts here lack, so vLLM on GPUs is out of scope.

The version a cell qualifies is declared once (the matrix's `vllm` axis, HARNESS_PARAM_VLLM; or
COMM_HARNESS_VLLM_VERSION); its known gaps come from the gap file (COMM_HARNESS_KNOWN_GAPS, default
examples/vllm/known-gaps.yaml), keyed by that version. An installed vLLM that differs from the declared one
is said in the header and as a warning: the gaps and the record would be another release's.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.adapters.base import KnownGap, TargetPlatform
from harness.adapters.gap_file import load_known_gaps
from harness.adapters.vllm.engine_shim import VersionMismatch, declared_version

if TYPE_CHECKING:
    from harness.common.dist_env import DistEnv

# The release examples/vllm/vllm-cpu.Dockerfile's VLLM_VERSION defaults to.
DEFAULT_VERSION = "0.33.0"
GAPS_ENV = "COMM_HARNESS_KNOWN_GAPS"
DEFAULT_GAP_FILE = Path(__file__).resolve().parents[3] / "examples" / "vllm" / "known-gaps.yaml"


def gap_file() -> Path:
    """The known-gaps file: COMM_HARNESS_KNOWN_GAPS (relative to the cell's directory), else the example's."""
    named = os.environ.get(GAPS_ENV)
    return Path(named).resolve() if named else DEFAULT_GAP_FILE


class VllmAdapter:
    """vLLM's CpuCommunicator, and its XPU and CUDA communicators' logic on gloo."""

    name = "vllm"
    # GroupCoordinator.all_reduce: "we always make the all-reduce operation out-of-place" (every release
    # qualified here); that CpuCommunicator happens to sum in place is not a promise.
    promises: frozenset[str] = frozenset()

    def qualified_version(self) -> str | None:
        """The version whose gaps apply: the declared one, else the installed one."""
        return declared_version() or self.version()

    @property
    def known_gaps(self) -> tuple[KnownGap, ...]:
        version = self.qualified_version()
        gaps = load_known_gaps(gap_file(), version) if version else None
        return gaps or ()

    def mismatch(self) -> str:
        """Why the installed vLLM is not the declared one ("" when they agree or none is declared)."""
        declared, installed = declared_version(), self.version()
        if declared and installed != declared:
            return (
                f"vLLM {installed or 'not installed'} is installed, but the cell declares vLLM {declared}: "
                f"the gaps and the record are {declared}'s; install vllm=={declared} or declare {installed}"
            )
        return ""

    @property
    def description(self) -> str:
        version = self.qualified_version()
        gaps = load_known_gaps(gap_file(), version) if version else None
        if gaps is None:
            recorded = f"no gaps recorded for {version} in {gap_file()}: every difference fails"
        else:
            recorded = f"{len(gaps)} gaps recorded for {version} in {gap_file().name}"
        mismatch = self.mismatch()
        installed = self.version() or "not installed"
        return f"vLLM's device communicators (vllm {installed}; {recorded})" + (
            f"; WARNING: {mismatch}" if mismatch else ""
        )

    def platforms(self, device: str) -> tuple[TargetPlatform, ...]:
        if device != "cpu":
            return ()
        return (
            TargetPlatform("cpu"),
            TargetPlatform("xpu", emulated_on="cpu"),
            TargetPlatform("cuda", emulated_on="cpu"),
        )

    def preload(self) -> None:
        if importlib.util.find_spec("vllm") is None:
            raise RuntimeError(
                f"vLLM is not installed in {sys.executable}: pip install --no-deps "
                f"vllm=={declared_version() or DEFAULT_VERSION} "
                "and the packages its communicators import (docs/qualifying.md, 'Qualifying vLLM')"
            )
        from harness.adapters.vllm import engine_shim

        engine_shim.select_cpu_target()
        engine_shim.install_platform("cpu")
        for module in engine_shim.PRELOADED_MODULES:
            importlib.import_module(module)
        if self.mismatch():
            warnings.warn(self.mismatch(), VersionMismatch, stacklevel=2)
        # The one thing every test needs, tried once here: a target that cannot start is one error, not a
        # changed gap per test.
        try:
            engine_shim.try_engine_config()
        except Exception as error:
            raise RuntimeError(
                f"vLLM {self.version()} cannot stand up its communicators' configuration: "
                f"{type(error).__name__}: {error}"
            ) from error

    def backend_names(self) -> tuple[str, ...] | None:
        """None: the names are each release's own (its `All2AllBackend` type), known only by importing vLLM
        (minutes, and often not installed where a matrix is read); a wrong one fails the cell's tests."""
        return None

    def create(self, env: DistEnv, platform: TargetPlatform, all2all_backend: str, group: Any = None) -> Any:
        from harness.adapters.vllm.communicator import VllmCommunicator

        return VllmCommunicator(env, platform, all2all_backend, group)

    def version(self) -> str | None:
        try:
            return importlib.metadata.version("vllm")
        except importlib.metadata.PackageNotFoundError:
            return None


ADAPTER = VllmAdapter()
