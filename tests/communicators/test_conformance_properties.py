"""Every collective against a single-process reference, on examples Hypothesis draws (property-based).

Distributed: each body runs on every rank. Each example is drawn identically on every rank (lockstep.py says
how the ranks stay in step, also while shrinking); every rank builds every rank's input from the example,
so it computes the reference (concatenation, sum, slice) itself, on the CPU, from all ranks' inputs.

The examples cover shapes from 0-d to 3-d with 0-length dims, every dim (0, 1, -1, the last positive one,
and the method's default), float32/bfloat16/float16/int64 and bool where only data moves, contiguous,
reversed, strided and offset inputs, uneven sizes with zero-size ranks in every position, and lists of
tensors of mixed dtypes and widths in any order. `--hypothesis-profile deep` searches further.

The `_emulated` tests run the same properties on the XPU communicator's own logic, emulated on cpu/gloo.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch
from comm_test_data import assert_identical
from conformance_examples import (
    AllReduceExample,
    DispatchExample,
    ListGatherExample,
    RootedExample,
    SendRecvExample,
    SplitExample,
    all_reduce_examples,
    dispatch_examples,
    lay_out,
    list_gather_examples,
    rank_input,
    rank_tensor,
    rooted_examples,
    send_recv_examples,
    split_examples,
    torch_dtype,
)
from hypothesis import strategies as st
from lockstep import given_on_ranks

from communicators import XpuCommunicator

# -- references: one process, every rank's input ------------------------------------------------------


def concatenated(shapes: Sequence[tuple[int, ...]], dtype: str, salt: int, dim: int) -> torch.Tensor:
    """Every rank's input (rank r has shapes[r]) concatenated along `dim` in rank order."""
    return torch.cat([rank_tensor(shape, dtype, r, salt) for r, shape in enumerate(shapes)], dim=dim)


def summed(shape: tuple[int, ...], dtype: str, salt: int, world_size: int, low: int = -8) -> torch.Tensor:
    """The element-wise sum of every rank's input of `shape`."""
    total = rank_tensor(shape, dtype, 0, salt, low)
    for r in range(1, world_size):
        total = total + rank_tensor(shape, dtype, r, salt, low)
    return total


# -- checks: one example on one communicator (the same for every platform's communicator) ----------------


def check_all_reduce(communicator, example: AllReduceExample, in_place: bool = True) -> None:
    rank, device = communicator.rank, communicator.device
    x = lay_out(rank_tensor(example.shape, example.dtype, rank, 0).to(device), example.layout)
    out = communicator.all_reduce(x)
    expected = summed(example.shape, example.dtype, 0, communicator.world_size)
    assert_identical(out, expected, "all_reduce")
    if x.is_contiguous() and in_place:
        # An optional promise (comm-harness's docs/qualifying.md): in place where the input is contiguous.
        assert_identical(x, expected, "all_reduce's contiguous input afterwards (must hold the sum)")
        if x.numel():
            assert out.data_ptr() == x.data_ptr(), "all_reduce of a contiguous input returned another tensor"


def check_split_gather(communicator, example: SplitExample) -> None:
    rank, device, piece = communicator.rank, communicator.device, example.piece
    x = rank_input(piece, example.sizes[rank], rank, 1, device)
    before = x.cpu().clone()
    dim = {"dim": piece.dim} if example.pass_dim else {}
    if example.call == "equal":
        out = communicator.all_gather(x, **dim)
    elif example.call == "sizes":
        out = communicator.all_gatherv(x, sizes=list(example.sizes), **dim)
    else:
        out = communicator.all_gatherv(x, **dim)
    expected = concatenated([piece.shape(s) for s in example.sizes], piece.dtype, 1, piece.dim)
    assert_identical(out, expected, f"all_gather{'' if example.call == 'equal' else 'v'}")
    assert_identical(x, before, "the gathered input afterwards (must be unchanged)")


def check_list_gather(communicator, example: ListGatherExample) -> None:
    rank, device = communicator.rank, communicator.device
    inputs = [rank_input(p, example.sizes[rank], rank, 10 + i, device) for i, p in enumerate(example.pieces)]
    container = list if example.container == "list" else tuple
    sizes = {"sizes": list(example.sizes)} if example.pass_sizes else {}
    out = communicator.all_gatherv(container(inputs), dim=example.dim, **sizes)
    assert isinstance(out, list), f"all_gatherv of a {example.container} returned a {type(out).__name__}"
    assert len(out) == len(inputs), f"all_gatherv of {len(inputs)} tensors returned {len(out)}"
    for i, (piece, got) in enumerate(zip(example.pieces, out, strict=True)):
        expected = concatenated([piece.shape(s) for s in example.sizes], piece.dtype, 10 + i, example.dim)
        assert_identical(got, expected, f"all_gatherv list item {i}")


def check_reduce_scatter(communicator, example: SplitExample) -> None:
    rank, device, piece = communicator.rank, communicator.device, example.piece
    total = sum(example.sizes)
    x = rank_input(piece, total, rank, 2, device)
    dim = {"dim": piece.dim} if example.pass_dim else {}
    if example.call == "equal":
        out = communicator.reduce_scatter(x, **dim)
    elif example.call == "sizes":
        out = communicator.reduce_scatterv(x, sizes=list(example.sizes), **dim)
    else:
        out = communicator.reduce_scatterv(x, **dim)
    full = summed(piece.shape(total), piece.dtype, 2, communicator.world_size)
    expected = full.split(list(example.sizes), dim=piece.dim)[rank]
    assert_identical(out, expected, f"reduce_scatter{'' if example.call == 'equal' else 'v'}")


def check_gather(communicator, example: RootedExample) -> None:
    rank, device, piece = communicator.rank, communicator.device, example.piece
    x = rank_input(piece, example.length, rank, 3, device)
    kwargs = {} if example.root is None else {"dst": example.root}
    if example.pass_dim:
        kwargs["dim"] = piece.dim
    out = communicator.gather(x, **kwargs)
    dst = 0 if example.root is None else example.root  # documented default: rank 0
    if rank == dst:
        shapes = [piece.shape(example.length)] * communicator.world_size
        assert_identical(out, concatenated(shapes, piece.dtype, 3, piece.dim), f"gather to rank {dst}")
    else:
        assert out is None, f"gather to rank {dst} returned a tensor on rank {rank}"


def check_broadcast(communicator, example: RootedExample) -> None:
    rank, device, piece = communicator.rank, communicator.device, example.piece
    x = rank_input(piece, example.length, rank, 4, device)
    out = communicator.broadcast(x, **({} if example.root is None else {"src": example.root}))
    src = 0 if example.root is None else example.root  # documented default: rank 0
    expected = rank_tensor(piece.shape(example.length), piece.dtype, src, 4)
    assert_identical(out, expected, f"broadcast from {src}")


def check_send_recv(communicator, example: SendRecvExample) -> None:
    n, rank, device = communicator.world_size, communicator.rank, communicator.device
    if n == 1:
        pytest.skip("send/recv needs two ranks or more")
    shift = 1 if example.shift is None else example.shift  # documented defaults: next rank, previous rank
    # One pair at a time, in sender order: blocking sends cannot deadlock, whatever the shift.
    for sender in range(n):
        receiver = (sender + shift) % n
        if rank == sender:
            x = lay_out(rank_tensor(example.shape, example.dtype, rank, 5).to(device), example.layout)
            communicator.send(x) if example.shift is None else communicator.send(x, dst=receiver)
        elif rank == receiver:
            dtype = torch_dtype(example.dtype)
            if example.shift is None:
                got = communicator.recv(example.shape, dtype)
            else:
                got = communicator.recv(example.shape, dtype, src=sender)
            expected = rank_tensor(example.shape, example.dtype, sender, 5)
            assert_identical(got, expected, f"rank {rank} receiving from rank {sender}")


def check_dispatch_and_combine(communicator, example: DispatchExample) -> None:
    n, rank, device = communicator.world_size, communicator.rank, communicator.device
    sizes, mine = list(example.sizes), example.sizes[rank]
    width = example.hidden.row_shape[0]
    # (shape of one rank's rows, dtype, salt) of every tensor dispatch gathers, hidden states first.
    specs = [((width,), example.hidden.dtype, 6)]
    if example.router_logits:
        specs.append(((5,), "float32", 7))
    else:
        specs += [((example.topk,), "float32", 7), ((example.topk,), "int64", 8)]
    inputs = [rank_input(example.hidden, mine, rank, 6, device)]
    inputs += [rank_tensor((mine, *row), dtype, rank, salt).to(device) for row, dtype, salt in specs[1:]]
    kwargs = {}
    if example.extras is not None:
        extras = [rank_input(p, mine, rank, 20 + i, device) for i, p in enumerate(example.extras)]
        kwargs["extra_tensors"] = extras
    if example.router_logits:
        got = communicator.dispatch_router_logits(*inputs, sizes, **kwargs)
    else:
        got = communicator.dispatch(*inputs, sizes, **kwargs)

    assert isinstance(got, tuple), f"dispatch returned a {type(got).__name__}"
    # Documented: a fourth item, the list of gathered extra tensors, when extra_tensors is given (even []).
    want_items = len(inputs) + (example.extras is not None)
    assert len(got) == want_items, f"dispatch returned {len(got)} items, expected {want_items}"
    for i, (row, dtype, salt) in enumerate(specs):
        expected = concatenated([(s, *row) for s in sizes], dtype, salt, 0)
        assert_identical(got[i], expected, f"dispatch item {i}")
    if example.extras is not None:
        extras = got[-1]
        assert isinstance(extras, list), f"dispatch's extra tensors came back as a {type(extras).__name__}"
        assert len(extras) == len(example.extras), f"{len(example.extras)} extra tensors, {len(extras)} back"
        for i, (piece, gathered) in enumerate(zip(example.extras, extras, strict=True)):
            expected = concatenated([piece.shape(s) for s in sizes], piece.dtype, 20 + i, 0)
            assert_identical(gathered, expected, f"dispatch extra tensor {i}")

    # Every rank's experts produce a different output for all tokens; combine sums them over ranks and
    # gives each rank its own rows.
    total = sum(sizes)
    output = rank_tensor((total, width), example.hidden.dtype, rank, 9, low=-4).to(device)
    combined = communicator.combine(output, sizes)
    start = sum(sizes[:rank])
    expected = summed((total, width), example.hidden.dtype, 9, n, low=-4)[start : start + mine]
    assert_identical(combined, expected, "combine")


# -- the properties, on the run's communicator -------------------------------------------------------------


@given_on_ranks(data=st.data())
def test_all_reduce_sums_every_rank_in_place(communicator, communicator_promises, data):
    example = data.draw(all_reduce_examples(), label="example")
    check_all_reduce(communicator, example, in_place="all_reduce_in_place" in communicator_promises)


@given_on_ranks(data=st.data())
def test_all_gather_and_all_gatherv_concatenate_in_rank_order(communicator, data):
    example = data.draw(split_examples(communicator.world_size, "gather"), label="example")
    check_split_gather(communicator, example)


@given_on_ranks(data=st.data())
def test_all_gatherv_of_a_list_gathers_each_tensor(communicator, data):
    check_list_gather(communicator, data.draw(list_gather_examples(communicator.world_size), label="example"))


@given_on_ranks(data=st.data())
def test_reduce_scatter_and_reduce_scatterv_give_each_rank_its_share_of_the_sum(communicator, data):
    check_reduce_scatter(
        communicator, data.draw(split_examples(communicator.world_size, "scatter"), label="example")
    )


@given_on_ranks(data=st.data())
def test_gather_concatenates_on_dst_only(communicator, data):
    check_gather(communicator, data.draw(rooted_examples(communicator.world_size), label="example"))


@given_on_ranks(data=st.data())
def test_broadcast_gives_every_rank_the_src_tensor(communicator, data):
    check_broadcast(communicator, data.draw(rooted_examples(communicator.world_size), label="example"))


@given_on_ranks(data=st.data())
def test_send_recv_deliver_to_the_peer(communicator, data):
    check_send_recv(communicator, data.draw(send_recv_examples(communicator.world_size), label="example"))


@given_on_ranks(data=st.data())
def test_dispatch_gathers_every_rank_and_combine_sums_back(communicator, data):
    check_dispatch_and_combine(
        communicator, data.draw(dispatch_examples(communicator.world_size), label="example")
    )


# -- the same properties on the XPU communicator's logic, emulated on cpu/gloo ------------------------------


def _emulated_xpu(dist_env) -> XpuCommunicator:
    return XpuCommunicator(dist_env.device, emulated=True)


@given_on_ranks(data=st.data())
def test_uneven_gathers_and_scatters_emulated(dist_env, xpu_emulation, data):
    communicator = _emulated_xpu(dist_env)
    n = dist_env.world_size
    check_split_gather(communicator, data.draw(split_examples(n, "gather"), label="gather"))
    check_reduce_scatter(communicator, data.draw(split_examples(n, "scatter"), label="scatter"))
    check_list_gather(communicator, data.draw(list_gather_examples(n), label="list gather"))


@given_on_ranks(data=st.data())
def test_gather_and_dispatch_emulated(dist_env, xpu_emulation, data):
    communicator = _emulated_xpu(dist_env)
    n = dist_env.world_size
    check_gather(communicator, data.draw(rooted_examples(n), label="gather"))
    check_dispatch_and_combine(communicator, data.draw(dispatch_examples(n), label="dispatch"))
