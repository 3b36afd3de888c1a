"""What the property tests draw: examples of every collective's arguments, and the tensors each rank builds.

An example is plain data (shapes, dims, dtype names, layouts, per-rank sizes, roots), the same on every rank;
each rank builds its own input from it with `rank_tensor`, and can build every other rank's input too, which
is how a test computes the single-process reference. Values are small integers: sums are exact in every
dtype here, and a wrong row, rank or dim shows up as a wrong value.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from hypothesis import strategies as st

# Every collective that only moves data takes these; reductions take the numeric ones.
MOVED_DTYPES = ("float32", "bfloat16", "float16", "int64", "bool")
SUMMED_DTYPES = ("float32", "bfloat16", "float16", "int64")
FLOAT_DTYPES = ("float32", "bfloat16", "float16")
# contiguous; "reversed": equal values laid out in reverse dim order; "strided": every other element of a
# wider buffer; "offset": contiguous but starting inside its storage.
LAYOUTS = ("contiguous", "reversed", "strided", "offset")
MAX_ROWS = 4  # per rank, along the collective's dim
MAX_EXTENT = 3  # every other dim


@dataclass(frozen=True)
class Piece:
    """A tensor of an example: its shape bar the collective's dim, where that dim goes, dtype, layout."""

    row_shape: tuple[int, ...]
    dim: int  # in [-ndim, ndim) of the whole tensor
    dtype: str
    layout: str

    def shape(self, length: int) -> tuple[int, ...]:
        """The tensor's shape when it has `length` along the collective's dim."""
        at = self.dim % (len(self.row_shape) + 1)
        return (*self.row_shape[:at], length, *self.row_shape[at:])


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype of a dtype name of this module."""
    return getattr(torch, name)


def rank_tensor(shape: tuple[int, ...], dtype: str, rank: int, salt: int, low: int = -8) -> torch.Tensor:
    """Rank `rank`'s values on the CPU: integers in [low, 8] (bool: random bits), fixed by rank and salt."""
    generator = torch.Generator().manual_seed(salt * 7919 + rank * 104729 + 17)
    if dtype == "bool":
        return torch.randint(0, 2, shape, generator=generator).bool()
    return torch.randint(low, 9, shape, generator=generator).to(torch_dtype(dtype))


def lay_out(values: torch.Tensor, layout: str) -> torch.Tensor:
    """A tensor equal to `values`, on its device, with the memory layout `layout` names."""
    if layout == "contiguous" or values.dim() == 0:
        return values
    if layout == "reversed":
        reverse = tuple(reversed(range(values.dim())))
        return values.permute(reverse).contiguous().permute(reverse)
    if layout == "strided":
        wide = values.new_zeros((*values.shape[:-1], 2 * values.shape[-1]))
        wide[..., ::2] = values
        return wide[..., ::2]
    if layout == "offset":
        storage = values.new_zeros(values.numel() + 3)
        storage[3:] = values.flatten()
        return storage[3:].view(values.shape)
    raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")


def rank_input(piece: Piece, length: int, rank: int, salt: int, device: torch.device) -> torch.Tensor:
    """Rank `rank`'s input for `piece` with `length` rows, on `device`, laid out as the piece says."""
    return lay_out(rank_tensor(piece.shape(length), piece.dtype, rank, salt).to(device), piece.layout)


# -- strategies -----------------------------------------------------------------------------------------


def per_rank_sizes(world_size: int) -> st.SearchStrategy[tuple[int, ...]]:
    """Rows per rank: zero-size ranks in any position, all zero, all equal, anything in between."""
    uneven = st.lists(st.integers(0, MAX_ROWS), min_size=world_size, max_size=world_size).map(tuple)
    equal = st.integers(0, MAX_ROWS).map(lambda n: (n,) * world_size)
    return st.one_of(uneven, equal)


@st.composite
def pieces(draw, dtypes: tuple[str, ...] = MOVED_DTYPES, max_row_dims: int = 2, dims=None) -> Piece:
    """A Piece: 0 to `max_row_dims` other dims (0-length ones too), any dim (or one of `dims`), any layout."""
    row_shape = tuple(draw(st.lists(st.integers(0, MAX_EXTENT), max_size=max_row_dims)))
    ndim = len(row_shape) + 1
    dim = draw(st.integers(-ndim, ndim - 1) if dims is None else st.sampled_from(dims))
    return Piece(row_shape, dim, draw(st.sampled_from(dtypes)), draw(st.sampled_from(LAYOUTS)))


@dataclass(frozen=True)
class AllReduceExample:
    shape: tuple[int, ...]
    dtype: str
    layout: str


@st.composite
def all_reduce_examples(draw) -> AllReduceExample:
    """Any shape from 0-d to 3-d (0-length dims too), a summable dtype, any layout."""
    shape = tuple(draw(st.lists(st.integers(0, MAX_EXTENT), max_size=3)))
    return AllReduceExample(shape, draw(st.sampled_from(SUMMED_DTYPES)), draw(st.sampled_from(LAYOUTS)))


@dataclass(frozen=True)
class SplitExample:
    """A gather or reduce-scatter of one tensor: the tensor, each rank's rows, and how the call is made."""

    piece: Piece
    sizes: tuple[int, ...]
    call: str  # "equal" (all_gather / reduce_scatter), "sizes" (…v with sizes), "no_sizes" (…v, sizes None)
    pass_dim: bool  # False: the method's default dim is used


# The dim each method uses when none is passed (its signature's default).
DEFAULT_DIMS = {
    ("gather", "equal"): -1,  # all_gather
    ("gather", "sizes"): 0,  # all_gatherv
    ("gather", "no_sizes"): 0,
    ("scatter", "equal"): -1,  # reduce_scatter
    ("scatter", "sizes"): -1,  # reduce_scatterv
    ("scatter", "no_sizes"): -1,
}


@st.composite
def split_examples(draw, world_size: int, op: str) -> SplitExample:
    """`op` "gather" or "scatter": uneven sizes (zero-size ranks anywhere) through the …v call, equal ones
    through any call; the method's default dim where `pass_dim` is False."""
    sizes = draw(per_rank_sizes(world_size))
    call = draw(st.sampled_from(("sizes", "equal", "no_sizes"))) if len(set(sizes)) == 1 else "sizes"
    pass_dim = draw(st.booleans())
    dims = None if pass_dim else (DEFAULT_DIMS[op, call],)
    piece = draw(pieces(MOVED_DTYPES if op == "gather" else SUMMED_DTYPES, dims=dims))
    return SplitExample(piece, sizes, call, pass_dim)


@dataclass(frozen=True)
class ListGatherExample:
    pieces: tuple[Piece, ...]
    dim: int
    sizes: tuple[int, ...]
    pass_sizes: bool
    container: str  # "list" or "tuple"


@st.composite
def list_gather_examples(draw, world_size: int) -> ListGatherExample:
    """0 to 4 tensors of mixed dtypes and widths (the widest anywhere), gathered along dim 0 or -1."""
    dim = draw(st.sampled_from((0, -1)))
    drawn = tuple(draw(st.lists(pieces(dims=(dim,)), max_size=4)))
    sizes = draw(per_rank_sizes(world_size))
    pass_sizes = True if len(set(sizes)) > 1 else draw(st.booleans())
    return ListGatherExample(drawn, dim, sizes, pass_sizes, draw(st.sampled_from(("list", "tuple"))))


@dataclass(frozen=True)
class RootedExample:
    """A gather to, or broadcast from, one rank: None for `root` or `dim` means the method's default."""

    piece: Piece
    length: int
    root: int | None
    pass_dim: bool


@st.composite
def rooted_examples(draw, world_size: int) -> RootedExample:
    root = draw(st.one_of(st.none(), st.integers(0, world_size - 1)))
    pass_dim = draw(st.booleans())
    piece = draw(pieces(dims=None if pass_dim else (-1,)))  # gather's default dim is -1
    return RootedExample(piece, draw(st.integers(0, MAX_ROWS)), root, pass_dim)


@dataclass(frozen=True)
class SendRecvExample:
    """Each rank sends to the rank `shift` ahead, receives from the one `shift` behind (None: defaults)."""

    shape: tuple[int, ...]
    dtype: str
    layout: str
    shift: int | None


@st.composite
def send_recv_examples(draw, world_size: int) -> SendRecvExample:
    shape = tuple(draw(st.lists(st.integers(0, MAX_EXTENT), min_size=1, max_size=3)))
    shift = draw(st.one_of(st.none(), st.integers(1, max(1, world_size - 1))))
    return SendRecvExample(shape, draw(st.sampled_from(MOVED_DTYPES)), draw(st.sampled_from(LAYOUTS)), shift)


@dataclass(frozen=True)
class DispatchExample:
    """One MoE step: tokens per rank, widths and dtypes, optional extra tensors, router logits or top-k."""

    sizes: tuple[int, ...]
    hidden: Piece
    topk: int
    router_logits: bool
    extras: tuple[Piece, ...] | None  # None: the argument is left out; (): an empty list is passed


@st.composite
def dispatch_examples(draw, world_size: int) -> DispatchExample:
    sizes = draw(per_rank_sizes(world_size))
    hidden = Piece(
        (draw(st.integers(0, 6)),), 0, draw(st.sampled_from(FLOAT_DTYPES)), draw(st.sampled_from(LAYOUTS))
    )
    extras = draw(st.one_of(st.none(), st.lists(pieces(dims=(0,)), max_size=3).map(tuple)))
    return DispatchExample(sizes, hidden, draw(st.integers(1, 3)), draw(st.booleans()), extras)


# Every example strategy, as a function of the world size (conftest warms Hypothesis up with them).
EXAMPLE_STRATEGIES = (
    lambda world_size: all_reduce_examples(),
    lambda world_size: split_examples(world_size, "gather"),
    lambda world_size: split_examples(world_size, "scatter"),
    list_gather_examples,
    rooted_examples,
    send_recv_examples,
    dispatch_examples,
)
