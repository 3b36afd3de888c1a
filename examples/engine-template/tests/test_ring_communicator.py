"""The engine's own suite: each test body runs on every rank of the cell (the `communicator` fixture of the
comm-harness plugin gives each rank the engine's communicator, through the adapter the matrix names)."""

import torch


def rank_tensor(rank: int) -> torch.Tensor:
    return torch.arange(6, dtype=torch.float32).reshape(2, 3) + 10 * rank


def test_all_reduce_sums_every_rank(communicator):
    x = rank_tensor(communicator.rank)
    out = communicator.all_reduce(x)
    expected = sum(rank_tensor(r) for r in range(communicator.world_size))
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(x, rank_tensor(communicator.rank))  # out of place


def test_all_gather_in_rank_order(communicator):
    out = communicator.all_gather(rank_tensor(communicator.rank), dim=1)
    expected = torch.cat([rank_tensor(r) for r in range(communicator.world_size)], dim=1)
    torch.testing.assert_close(out, expected)


def test_broadcast_from_last_rank(communicator):
    src = communicator.world_size - 1
    out = communicator.broadcast(rank_tensor(communicator.rank), src=src)
    torch.testing.assert_close(out, rank_tensor(src))
