"""Where vLLM 0.33.0's communicators differ from the conformance suite, as measured (see qualification/).

Each entry becomes a strict xfail: the cell passes while vLLM behaves exactly so, and fails when it is fixed
(XPASS) or fails differently (`match` no longer found in the failure). Platforms are TargetPlatform ids.
"""

from __future__ import annotations

from harness.adapters.base import KnownGap

CPU, XPU, CUDA = "cpu", "xpu_emulated", "cuda_emulated"

KNOWN_GAPS: tuple[KnownGap, ...] = ()
