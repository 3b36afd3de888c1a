"""The vLLM adapter's version shims, on the two layouts vLLM's classes have had (no vLLM imported here:
the qualification runs, examples/vllm, exercise the shims on vLLM's own classes)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.adapters.vllm.engine_shim import dp_metadata_of


@dataclass
class DPMetadataUpTo019:
    """vllm/forward_context.py of 0.19.1: the maximum first, then the per-rank counts."""

    max_tokens_across_dp_cpu: torch.Tensor
    num_tokens_across_dp_cpu: torch.Tensor
    local_sizes: list[int] | None = None


@dataclass
class DPMetadataFrom020:
    """vllm/forward_context.py of 0.20.0 to 0.34.0: the per-rank counts only."""

    num_tokens_across_dp_cpu: torch.Tensor
    local_sizes: list[int] | None = None


def test_dp_metadata_fills_the_maximum_where_the_class_has_it():
    old = dp_metadata_of(DPMetadataUpTo019, [2, 0, 5])
    assert old.max_tokens_across_dp_cpu.item() == 5
    assert old.num_tokens_across_dp_cpu.tolist() == [2, 0, 5]
    assert old.num_tokens_across_dp_cpu.dtype == torch.int32


def test_dp_metadata_passes_the_counts_alone_where_the_class_takes_only_them():
    new = dp_metadata_of(DPMetadataFrom020, [3, 1])
    assert new.num_tokens_across_dp_cpu.tolist() == [3, 1]
    assert new.local_sizes is None
