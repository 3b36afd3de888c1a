"""Inputs and references for the collective tests: every rank can rebuild every rank's input on the CPU.

Values are small integers, so sums are exact in float32, bfloat16 and int64 alike, and a reference
computed on one CPU matches a device result bit for bit (bf16 is still compared with a tolerance).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

DTYPES = (torch.float32, torch.bfloat16, torch.int64)
DIMS = (0, 1, -1)
LAYOUTS = ("contiguous", "non-contiguous")
# The fixed dims of a test tensor; the collective's dim gets its length from the sizes under test.
BASE_SHAPE = (3, 4, 5)

SIZE_PATTERNS = ("uneven_with_zeros", "all_zero", "last_rank_only", "equal")


def sizes_for(pattern: str, world_size: int) -> list[int]:
    """Per-rank lengths; 'uneven_with_zeros' has zero-size ranks from world size 2 on: 2, 0, 4, 5, 0, 7..."""
    if pattern == "uneven_with_zeros":
        return [0 if rank % 3 == 1 else rank + 2 for rank in range(world_size)]
    if pattern == "all_zero":
        return [0] * world_size
    if pattern == "last_rank_only":
        return [0] * (world_size - 1) + [3]
    if pattern == "equal":
        return [3] * world_size
    raise ValueError(f"unknown size pattern {pattern!r}; expected one of {SIZE_PATTERNS}")


def cases() -> Iterator[tuple[torch.dtype, int, str]]:
    """Every (dtype, dim) pair, each dtype and each dim seen both contiguous and non-contiguous."""
    # 9 cases instead of all 18: a collective's cost under a loaded 2-core CI machine is in the round
    # trips, and layout bugs do not depend on the dtype/dim pair (to_rows handles every layout alike).
    for d, dtype in enumerate(DTYPES):
        for k, dim in enumerate(DIMS):
            yield dtype, dim, LAYOUTS[(d + k) % 2]


def shape_with(length: int, dim: int) -> tuple[int, ...]:
    """BASE_SHAPE with `length` along `dim`."""
    shape = list(BASE_SHAPE)
    shape[dim] = length
    return tuple(shape)


def rank_input(
    shape: tuple[int, ...], dtype: torch.dtype, rank: int, seed: int = 0, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Rank `rank`'s deterministic input: integers in [-8, 8], different per rank and seed."""
    generator = torch.Generator().manual_seed(seed * 1009 + rank)
    return torch.randint(-8, 9, shape, generator=generator).to(dtype).to(device)


def with_layout(tensor: torch.Tensor, layout: str) -> torch.Tensor:
    """`tensor` itself, or an equal tensor whose memory is laid out in reverse dim order (non-contiguous)."""
    if layout == "contiguous":
        return tensor
    reverse = tuple(reversed(range(tensor.dim())))
    return tensor.permute(reverse).contiguous().permute(reverse)


def assert_equal(actual: torch.Tensor, expected: torch.Tensor, case: str) -> None:
    """`actual` (on any device) equals `expected` in shape, dtype and values; bf16 with its tolerance."""
    assert actual.dtype == expected.dtype, f"{case}: dtype {actual.dtype}, expected {expected.dtype}"
    assert tuple(actual.shape) == tuple(expected.shape), (
        f"{case}: shape {tuple(actual.shape)}, expected {tuple(expected.shape)}"
    )
    torch.testing.assert_close(actual.cpu(), expected, msg=lambda m: f"{case}: {m}")


def case_name(dtype: torch.dtype, dim: int, layout: str, extra: str = "") -> str:
    """A readable label for one combination, for assertion messages."""
    label = f"{str(dtype).removeprefix('torch.')} dim={dim} {layout}"
    return f"{label} {extra}".strip()


def assert_identical(actual: torch.Tensor, expected: torch.Tensor, case: str) -> None:
    """`actual` (on any device) equals `expected` exactly: dtype, shape and every value.

    For inputs of small integers, whose sums every dtype here represents exactly: a tolerance could only hide
    a bug (a value that went through the wrong dtype, a row summed twice into a zero).
    """
    assert actual.dtype == expected.dtype, f"{case}: dtype {actual.dtype}, expected {expected.dtype}"
    assert tuple(actual.shape) == tuple(expected.shape), (
        f"{case}: shape {tuple(actual.shape)}, expected {tuple(expected.shape)}"
    )
    actual = actual.cpu()
    if torch.equal(actual, expected):
        return
    wrong = (actual != expected).nonzero().tolist()
    first = tuple(wrong[0])
    raise AssertionError(
        f"{case}: {len(wrong)} of {expected.numel()} values differ; first at index {first}: "
        f"{actual[first].item()!r}, expected {expected[first].item()!r}\nactual:   {actual.tolist()}\n"
        f"expected: {expected.tolist()}"
    )
