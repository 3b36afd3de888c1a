"""The vLLM adapter: vLLM 0.33.0's own device communicators under the conformance suite.

`--dist-communicator vllm` runs its CpuCommunicator natively and the logic of its XpuCommunicator and
CudaCommunicator emulated on cpu/gloo (test ids `[xpu_emulated]`, `[cuda_emulated]`; JUnit property
`emulated=xpu-on-gloo`/`cuda-on-gloo`), with dispatch/combine through its AgRsAll2AllManager in vLLM's own
parallel state. vLLM is imported only when this adapter is chosen, and only on cpu: its wheel pins a CUDA
torch that the GPU hosts here lack, so vLLM on GPUs is out of scope.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
from typing import TYPE_CHECKING, Any

from harness.adapters.base import KnownGap, TargetPlatform
from harness.adapters.vllm.gaps import KNOWN_GAPS

if TYPE_CHECKING:
    from harness.pytest_plugin.env import DistEnv

QUALIFIED_VERSION = "0.33.0"


class VllmAdapter:
    """vLLM's CpuCommunicator, and its XPU and CUDA communicators' logic on gloo."""

    name = "vllm"
    known_gaps: tuple[KnownGap, ...] = KNOWN_GAPS

    @property
    def description(self) -> str:
        installed = self.version() or "not installed"
        return f"vLLM's device communicators (vllm {installed}; gaps recorded for {QUALIFIED_VERSION})"

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
                f"vLLM is not installed in {sys.executable}: pip install --no-deps vllm=={QUALIFIED_VERSION} "
                "and the packages its communicators import (README, 'Qualifying vLLM')"
            )
        from harness.adapters.vllm import engine_shim

        engine_shim.select_cpu_target()
        for module in engine_shim.PRELOADED_MODULES:
            importlib.import_module(module)

    def create(self, env: DistEnv, platform: TargetPlatform, all2all_backend: str) -> Any:
        from harness.adapters.vllm.communicator import VllmCommunicator

        return VllmCommunicator(env, platform, all2all_backend)

    def version(self) -> str | None:
        try:
            return importlib.metadata.version("vllm")
        except importlib.metadata.PackageNotFoundError:
            return None


ADAPTER = VllmAdapter()
