"""`DeviceCommunicatorBase`: the collective vocabulary every platform's communicator speaks.

Public methods validate their input, move the collective's dim to dim 0 (`tensor_layout.to_rows`) and
call two primitives on contiguous rows, `_all_gatherv_rows` and `_reduce_scatterv_rows`. The base
implements them with torch.distributed's list collectives, which take uneven sizes on NCCL; platform
subclasses override only these primitives (and the few methods whose backend needs another way).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
import torch.distributed as dist

from communicators.all2all import All2AllManagerBase, create_all2all_manager
from communicators.backends import DEFAULT_ALL2ALL_BACKEND
from communicators.group_calls import GroupCalls
from communicators.resolution import resolve_all2all_backend
from communicators.tensor_layout import (
    RowSplit,
    equal_split,
    from_rows,
    new_rows,
    normalize_dim,
    pack_rows,
    row_bytes,
    row_split,
    to_rows,
    unpack_rows,
)

TensorOrList = torch.Tensor | Sequence[torch.Tensor]


class DeviceCommunicatorBase:
    """Collectives over one process group on one device, plus all2all dispatch/combine via a manager."""

    platform: ClassVar[str]
    # The torch.distributed backend the group must have ("gloo", "nccl", "xccl").
    process_group_backend: ClassVar[str]

    def __init__(
        self,
        device: torch.device | str,
        group: dist.ProcessGroup | None = None,
        *,
        all2all_backend: str = DEFAULT_ALL2ALL_BACKEND,
    ) -> None:
        if not dist.is_initialized():
            raise RuntimeError(
                f"{type(self).__name__}: torch.distributed is not initialised; call "
                "torch.distributed.init_process_group first (in tests: ask for the dist_env fixture)"
            )
        self.device = self._device_for(torch.device(device))
        self.group = group if group is not None else dist.group.WORLD
        if self.group is dist.GroupMember.NON_GROUP_MEMBER:
            # What dist.new_group returns on the ranks it leaves out; every call on it would fail later.
            raise ValueError(
                f"{type(self).__name__}: rank {dist.get_rank()} is not a member of the group; create the "
                "communicator only on the ranks that dist.new_group(ranks) was given"
            )
        self._check_group_backend()
        self.rank = dist.get_rank(self.group)
        self.world_size = dist.get_world_size(self.group)
        self._calls = GroupCalls(self.group)
        self.all2all_backend = resolve_all2all_backend(self.platform, all2all_backend)
        self.all2all_manager: All2AllManagerBase = create_all2all_manager(self)

    @property
    def group_calls(self) -> GroupCalls:
        """The collectives this communicator issues on its group (group_calls.py): what the uneven ways of
        uneven_rows.py take, and what benchmarks/communicators/ times them with."""
        return self._calls

    # -- set-up hooks ---------------------------------------------------------------------------------

    def _device_for(self, device: torch.device) -> torch.device:
        """`device` checked against this platform, with a default index filled in where it has one."""
        if device.type != self.platform:
            raise ValueError(f"{type(self).__name__} runs on {self.platform} devices, got {device}")
        return device

    def _check_group_backend(self) -> None:
        backend = str(dist.get_backend(self.group))
        if self.process_group_backend not in backend:
            raise ValueError(
                f"{type(self).__name__} needs a {self.process_group_backend} process group, "
                f"got one with backend {backend!r}"
            )

    # -- collectives ----------------------------------------------------------------------------------

    def all_reduce(self, input_: torch.Tensor) -> torch.Tensor:
        """The element-wise sum of `input_` over all ranks (in place where `input_` is contiguous)."""
        self._check_tensor(input_)
        out = input_.contiguous()
        self._calls.all_reduce(out)
        return out

    def all_gather(self, input_: torch.Tensor, dim: int = -1) -> torch.Tensor:
        """Every rank's `input_` (all of one shape) concatenated along `dim` in rank order."""
        return self.all_gatherv(input_, dim=dim)

    def all_gatherv(
        self, input_: TensorOrList, dim: int = 0, sizes: Sequence[int] | None = None
    ) -> torch.Tensor | list[torch.Tensor]:
        """Every rank's tensor(s) concatenated along `dim`, where rank r has `sizes[r]` (None: all equal)."""
        if isinstance(input_, torch.Tensor):
            # The hot path (one tensor, dim 0, contiguous) runs no Python loop and no copy before the
            # collective: on NCCL a call below a few MiB costs only host time (bench_findings.md), so
            # each step here is a few hundred nanoseconds at most, and a dim-0 gather's result is the
            # freshly allocated, row-major output itself.
            if input_.device != self.device:
                self._check_tensor(input_)
            d = normalize_dim(input_, dim, self.rank)
            rows = to_rows(input_, d)
            gathered = self._gather_rows(rows, self._split_for(rows.shape[0], sizes, dim))
            return gathered if d == 0 else from_rows(gathered, d)
        if not isinstance(input_, (list, tuple)):
            self._check_tensor(input_)  # raises: neither a tensor nor a list of them
        tensors = list(input_)
        if not tensors:
            return []
        dims = []
        for tensor in tensors:
            self._check_tensor(tensor)
            dims.append(normalize_dim(tensor, dim, self.rank))
        lengths = {tensor.shape[d] for tensor, d in zip(tensors, dims, strict=True)}
        if len(lengths) != 1:
            raise ValueError(
                f"rank {self.rank}: all_gatherv of a list needs one length along dim {dim} in every tensor, "
                f"got {[tuple(t.shape) for t in tensors]}"
            )
        split = self._split_for(lengths.pop(), sizes, dim)
        rows = [to_rows(tensor, d) for tensor, d in zip(tensors, dims, strict=True)]
        gathered = self._gather_row_list(rows, split)
        return [from_rows(rows_out, d) for rows_out, d in zip(gathered, dims, strict=True)]

    def reduce_scatter(self, input_: torch.Tensor, dim: int = -1) -> torch.Tensor:
        """This rank's equal share along `dim` of the sum of every rank's `input_`."""
        return self.reduce_scatterv(input_, dim=dim)

    def reduce_scatterv(
        self, input_: torch.Tensor, dim: int = -1, sizes: Sequence[int] | None = None
    ) -> torch.Tensor:
        """This rank's `sizes[rank]` slice along `dim` of the sum of every rank's `input_`."""
        self._check_tensor(input_)
        d = normalize_dim(input_, dim, self.rank)
        length = input_.shape[d]
        if sizes is None:
            if length % self.world_size:
                raise ValueError(
                    f"rank {self.rank}: reduce_scatter needs a length along dim {dim} divisible by the world "
                    f"size {self.world_size}, got {length}; pass sizes to reduce_scatterv for uneven shares"
                )
            split = equal_split(length // self.world_size, self.world_size, self.rank)
        else:
            split = row_split(tuple(sizes), self.world_size, self.rank)
            if split.total != length:
                raise ValueError(
                    f"rank {self.rank}: sizes {list(split.sizes)} add up to {split.total} but the tensor has "
                    f"{length} along dim {dim}"
                )
        rows = to_rows(input_, d)
        if length == 0:
            # Every rank sees the same sizes, so every rank skips the collective together.
            return from_rows(rows, d)
        # Each platform's primitive returns row-major rows: along dim 0 they are the result.
        scattered = self._reduce_scatterv_rows(rows, split)
        return scattered if d == 0 else from_rows(scattered, d)

    def gather(self, input_: torch.Tensor, dst: int = 0, dim: int = -1) -> torch.Tensor | None:
        """On `dst`, every rank's `input_` concatenated along `dim`; None on the other ranks."""
        self._check_tensor(input_)
        self._check_peer(dst, "dst")
        d = normalize_dim(input_, dim, self.rank)
        rows = to_rows(input_, d)
        gather_list = [torch.empty_like(rows) for _ in range(self.world_size)] if self.rank == dst else None
        dist.gather(rows, gather_list, group=self.group, group_dst=dst)
        if gather_list is None:
            return None
        return from_rows(torch.cat(gather_list), d)

    def broadcast(self, input_: torch.Tensor, src: int = 0) -> torch.Tensor:
        """Rank `src`'s `input_` on every rank."""
        self._check_tensor(input_)
        self._check_peer(src, "src")
        out = input_.contiguous()
        self._calls.broadcast(out, src)
        return out

    def send(self, input_: torch.Tensor, dst: int | None = None) -> None:
        """Send `input_` to rank `dst` of the group (default: the next rank)."""
        self._check_tensor(input_)
        dst = (self.rank + 1) % self.world_size if dst is None else dst
        self._check_peer(dst, "dst")
        dist.send(input_.contiguous(), group=self.group, group_dst=dst)

    def recv(
        self, size: torch.Size | Sequence[int], dtype: torch.dtype, src: int | None = None
    ) -> torch.Tensor:
        """A tensor of `size` and `dtype` from rank `src` of the group (default: the previous rank)."""
        src = (self.rank - 1) % self.world_size if src is None else src
        self._check_peer(src, "src")
        out = torch.empty(tuple(size), dtype=dtype, device=self.device)
        dist.recv(out, group=self.group, group_src=src)
        return out

    def barrier(self) -> None:
        """Wait until every rank of the group reaches this point."""
        dist.barrier(group=self.group)

    def destroy(self) -> None:
        """Release the all2all manager; the process group belongs to the caller and stays."""
        self.all2all_manager.destroy()

    # -- all2all, delegated to the manager -------------------------------------------------------------

    def dispatch(
        self,
        hidden_states: torch.Tensor,
        topk_weights: torch.Tensor,
        topk_ids: torch.Tensor,
        sizes: Sequence[int],
        extra_tensors: Sequence[torch.Tensor] | None = None,
    ) -> tuple:
        """Every rank's tokens, router weights and expert ids (and extra tensors), see the manager."""
        return self.all2all_manager.dispatch(hidden_states, topk_weights, topk_ids, sizes, extra_tensors)

    def dispatch_router_logits(
        self,
        hidden_states: torch.Tensor,
        router_logits: torch.Tensor,
        sizes: Sequence[int],
        extra_tensors: Sequence[torch.Tensor] | None = None,
    ) -> tuple:
        """Every rank's tokens and router logits (and extra tensors), see the manager."""
        return self.all2all_manager.dispatch_router_logits(hidden_states, router_logits, sizes, extra_tensors)

    def combine(self, hidden_states: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
        """This rank's own tokens of the expert output summed over ranks, see the manager."""
        return self.all2all_manager.combine(hidden_states, sizes)

    # -- primitives on rows (dim 0, contiguous), overridden per platform --------------------------------

    # Whether a list gather packs the small tensors into one byte buffer (one collective for all of them,
    # plus copies). On NCCL a collective is queued on the stream without a host wait and the copies are
    # kernels too, so each tensor gathers alone; where a collective costs a round trip on the host (gloo,
    # the emulated xccl), packing wins.
    packs_row_lists: ClassVar[bool] = False

    def _gather_row_list(self, rows: list[torch.Tensor], split: RowSplit) -> list[torch.Tensor]:
        if not self.packs_row_lists and split.equal and split.total and len(rows) > 1:
            # Equal sizes (every MoE dispatch with the same batch on each rank): the gathers of the list
            # go out as one group, as vLLM's pynccl all_gatherv of a list does, instead of one launch each.
            gathered = [new_rows(tensor, split.total) for tensor in rows]
            self._calls.all_gather_coalesced(gathered, rows)
            return gathered
        if not self.packs_row_lists or len(rows) <= 2:
            return [self._gather_rows(tensor, split) for tensor in rows]
        # At most two collectives for any list: the widest tensor (the hidden states, in MoE dispatch)
        # travels alone, without a copy; the others (weights, ids, scales) travel together as the columns
        # of one byte buffer. Packing the widest too would cost more in copies than a round trip saves.
        # From the row shape, not the data: ranks with zero rows must pick the same tensor as the others.
        widest = max(range(len(rows)), key=lambda i: row_bytes(rows[i]))
        others = [i for i in range(len(rows)) if i != widest]
        packed, columns = pack_rows([rows[i] for i in others])
        gathered = dict(zip(others, unpack_rows(self._gather_rows(packed, split), columns), strict=True))
        gathered[widest] = self._gather_rows(rows[widest], split)
        return [gathered[i] for i in range(len(rows))]

    def _gather_rows(self, rows: torch.Tensor, split: RowSplit) -> torch.Tensor:
        if split.total == 0:
            # Every rank sees the same sizes, so every rank skips the collective together.
            return new_rows(rows, 0)
        return self._all_gatherv_rows(rows, split)

    def _all_gatherv_rows(self, rows: torch.Tensor, split: RowSplit) -> torch.Tensor:
        out = new_rows(rows, split.total)
        if split.equal:
            self._calls.all_gather(out, rows)
        else:
            # Row blocks of a dim-0 buffer are contiguous views: NCCL writes each rank's rows in place.
            dist.all_gather(list(out.split(split.sizes)), rows, group=self.group)
        return out

    def _reduce_scatterv_rows(self, rows: torch.Tensor, split: RowSplit) -> torch.Tensor:
        out = new_rows(rows, split.own)
        if split.equal:
            self._calls.reduce_scatter(out, rows)
        else:
            dist.reduce_scatter(out, list(rows.split(split.sizes)), group=self.group)
        return out

    def _split_for(self, local: int, sizes: Sequence[int] | None, dim: int) -> RowSplit:
        """The checked split of a gather where this rank has `local` rows (sizes None: every rank has)."""
        if sizes is None:
            return equal_split(local, self.world_size, self.rank)
        split = row_split(tuple(sizes), self.world_size, self.rank)
        if split.own != local:
            raise ValueError(
                f"rank {self.rank}: sizes[{self.rank}] is {split.own} but the tensor has {local} "
                f"along dim {dim} (sizes {list(split.sizes)})"
            )
        return split

    # -- checks -----------------------------------------------------------------------------------------

    def _check_tensor(self, tensor: torch.Tensor) -> None:
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"rank {self.rank}: expected a torch.Tensor, got {type(tensor).__name__}")
        if tensor.device != self.device:
            raise ValueError(
                f"rank {self.rank}: tensor is on {tensor.device} "
                f"but {type(self).__name__} works on {self.device}"
            )

    def _check_peer(self, peer: int, role: str) -> None:
        if not 0 <= peer < self.world_size:
            raise ValueError(
                f"rank {self.rank}: {role} {peer} is not a rank of this group (size {self.world_size})"
            )
