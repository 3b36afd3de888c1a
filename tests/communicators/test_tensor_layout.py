"""Row layout and size checks of the communicators' hot path (no process group needed)."""

from __future__ import annotations

import pytest
import torch

from communicators.tensor_layout import equal_split, from_rows, row_split, to_rows


def test_row_split_holds_every_fact_a_collective_needs() -> None:
    split = row_split((2, 0, 4, 5), 4, 2)
    assert split.sizes == (2, 0, 4, 5)
    assert (split.total, split.start, split.own, split.equal) == (11, 2, 4, False)
    assert row_split((3, 3), 2, 1).equal
    assert row_split((3, 3), 2, 1) == equal_split(3, 2, 1)


@pytest.mark.parametrize("sizes", [(2, 5, 2), (3, 3, 4), (4, 3, 3), (1, 1, 2, 1), (0, 2, 0)])
def test_a_split_is_equal_only_when_every_rank_has_as_many_rows(sizes) -> None:
    # `equal` sends a gather down the equal collective's path: one rank that differs must keep it off.
    for rank in range(len(sizes)):
        assert not row_split(sizes, len(sizes), rank).equal, (sizes, rank)
    assert row_split((2, 2, 2), 3, 1).equal


def test_row_split_accepts_any_integer_likes_and_checks_them_every_time() -> None:
    assert row_split((torch.tensor(2), 3), 2, 0).sizes == (2, 3)
    # A bad value is rejected on every call, not only the first (errors are never cached).
    for _ in range(2):
        with pytest.raises(
            ValueError, match=r"rank 1: sizes \[1, 2, 3\] has 3 entries; it needs one per rank"
        ):
            row_split((1, 2, 3), 2, 1)
        with pytest.raises(ValueError, match="negative"):
            row_split((1, -2), 2, 0)


def test_dim_0_of_a_contiguous_tensor_is_its_own_rows_without_a_copy() -> None:
    x = torch.arange(12).reshape(3, 4)
    assert to_rows(x, 0) is x
    assert from_rows(x, 0) is x


def test_other_dims_and_layouts_become_dense_rows_and_back() -> None:
    x = torch.arange(24).reshape(2, 3, 4)
    rows = to_rows(x, 2)
    assert rows.shape == (4, 2, 3) and rows.is_contiguous()
    assert torch.equal(from_rows(rows, 2), x)
    strided = x.permute(2, 1, 0).contiguous().permute(2, 1, 0)  # equal values, reversed memory order
    rows = to_rows(strided, 0)
    assert rows is not strided and rows.is_contiguous() and torch.equal(rows, x)
    # An empty tensor gets fresh row-major strides: byte views of it must work.
    empty = torch.empty(3, 0).t()
    assert empty.stride() != (3, 1)
    assert to_rows(empty, 0).stride() == (3, 1)
