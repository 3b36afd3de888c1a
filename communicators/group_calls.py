"""Collectives issued on the ProcessGroup itself, without torch.distributed's Python wrapper.

On NCCL a collective below a few MiB is host-bound: a raw `torch.distributed` call costs 25-45 us of host time
on an H200 host, more than the GPU needs, so every microsecond of Python shows in its time
(benchmarks/communicators/bench_findings.md). The wrapper (`dist.all_gather_single` and friends) spends about
2 us of that re-checking what the communicator has already checked, building an options object and resolving
the group, which is as much as the communicator's own work. Calling the group's method directly, with options
built once, makes a communicator call cost no more host time than a raw torch.distributed call.

The wrapper still runs wherever it does more than check: under torch.compile (Dynamo maps it to functional
collectives), for tensor subclasses with `__torch_function__` (DTensor, FakeTensor), for complex tensors
(which it views as real), and inside torch.distributed's coalescing manager.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.distributed as dist
from torch.distributed import distributed_c10d as c10d
from torch.overrides import has_torch_function

from communicators.peer_memory import PeerWorkspace
from communicators.torch_compat import all_gather_single, reduce_scatter_single


def _blocking(options):
    """`options` (a c10d *Options object) set for a blocking call."""
    # asyncOp=False is what the wrapper sets for a blocking call: NCCL then runs the collective on the
    # caller's current stream, without the side stream and its events (torch >= 2.8 has the field).
    if hasattr(options, "asyncOp"):
        options.asyncOp = False
    return options


def _wait(work: dist.Work | None) -> None:
    # A blocking call on NCCL (asyncOp=False; seen with torch 2.11) returns no work: it is already ordered
    # on the current stream. gloo returns work to wait for, as older torch did.
    if work is not None:
        work.wait()


class GroupCalls:
    """Blocking collectives on one group: all_gather (also of a list), reduce_scatter, all_reduce, broadcast,
    reduce, their uneven list forms, and point-to-point exchanges in one group."""

    def __init__(self, group: dist.ProcessGroup) -> None:
        self.group = group
        # torch 2.13 renamed the group's methods along with the module's functions (torch_compat.py).
        self._all_gather = getattr(group, "all_gather_single", None) or group._allgather_base
        self._reduce_scatter = getattr(group, "reduce_scatter_single", None) or group._reduce_scatter_base
        self._all_gather_coalesced = (
            getattr(group, "all_gather_single_coalesced", None) or group.allgather_into_tensor_coalesced
        )
        # NCCL runs a coalesced all-gather as one all-gather per tensor inside one NCCL group. gloo flattens
        # the list into one buffer of the first tensor's dtype: mixed dtypes come back garbled, silently
        # (torch 2.13, found by this package's tests), so elsewhere the list gathers tensor by tensor.
        self.coalesces = "nccl" in str(dist.get_backend(group))
        # NCCL's reduce writes only the root's buffer; gloo's (ring) reduce writes every rank's for large
        # tensors, so elsewhere a non-root rank reduces a copy when its tensor must stay as it was.
        self.reduce_reads_only_at_peers = self.coalesces
        self._all_gather_options = _blocking(c10d.AllgatherOptions())
        self._reduce_scatter_options = _blocking(c10d.ReduceScatterOptions())
        self._all_reduce_options = _blocking(c10d.AllreduceOptions())
        self._async_all_gather_options = c10d.AllgatherOptions()
        self._broadcast_options: dict[int, c10d.BroadcastOptions] = {}
        self._reduce_options: dict[int, c10d.ReduceOptions] = {}
        # Copies from the peers' GPU memory (uneven_rows' peer-copy ways); nothing is allocated until used.
        self.peer_workspace = PeerWorkspace(group)

    def _direct(self, tensor: torch.Tensor) -> bool:
        """Whether a call on `tensor` may skip the wrapper (see the module docstring)."""
        return not (
            has_torch_function((tensor,))
            or tensor.is_complex()
            or torch.compiler.is_compiling()
            or self.group in c10d._world.pg_coalesce_state
        )

    def _direct_all(self, tensors: list[torch.Tensor]) -> bool:
        """`_direct` for every tensor of a list, with the checks that do not depend on a tensor made once."""
        return not (
            has_torch_function(tuple(tensors))
            or any(map(torch.is_complex, tensors))
            or torch.compiler.is_compiling()
            or self.group in c10d._world.pg_coalesce_state
        )

    def all_gather(self, out: torch.Tensor, rows: torch.Tensor) -> None:
        """Every rank's `rows` (all of one size) into `out`, in rank order."""
        if self._direct(rows):
            _wait(self._all_gather(out, rows, self._all_gather_options))
        else:
            all_gather_single(out, rows, group=self.group)

    def all_gather_coalesced(self, outs: list[torch.Tensor], rows: list[torch.Tensor]) -> None:
        """Several equal-size all-gathers as one group call: on NCCL one group launch, not one per tensor."""
        if self.coalesces and self._direct_all(rows):
            _wait(self._all_gather_coalesced(outs, rows, self._all_gather_options))
        else:
            for out, tensor in zip(outs, rows, strict=True):
                self.all_gather(out, tensor)

    def reduce_scatter(self, out: torch.Tensor, rows: torch.Tensor) -> None:
        """This rank's equal block of the sum of every rank's `rows`, into `out`."""
        if self._direct(rows):
            _wait(self._reduce_scatter(out, rows, self._reduce_scatter_options))
        else:
            reduce_scatter_single(out, rows, group=self.group)

    def all_reduce(self, tensor: torch.Tensor) -> None:
        """The sum over ranks of `tensor`, in place."""
        if self._direct(tensor):
            _wait(self.group.allreduce([tensor], self._all_reduce_options))
        else:
            dist.all_reduce(tensor, group=self.group)

    def broadcast(self, tensor: torch.Tensor, src: int) -> None:
        """Group rank `src`'s `tensor` on every rank, in place."""
        if not self._direct(tensor):
            dist.broadcast(tensor, group=self.group, group_src=src)
            return
        options = self._broadcast_options.get(src)
        if options is None:
            options = self._broadcast_options[src] = _blocking(c10d.BroadcastOptions())
            options.rootRank = src
            options.rootTensor = 0
        _wait(self.group.broadcast([tensor], options))

    def reduce(self, tensor: torch.Tensor, dst: int) -> None:
        """The sum over ranks of `tensor` into group rank `dst`'s `tensor` (others: see reduce_keeping)."""
        if not self._direct(tensor):
            dist.reduce(tensor, group=self.group, group_dst=dst)
            return
        options = self._reduce_options.get(dst)
        if options is None:
            options = self._reduce_options[dst] = _blocking(c10d.ReduceOptions())
            options.reduceOp = c10d.ReduceOp.SUM
            options.rootRank = dst
            options.rootTensor = 0
        _wait(self.group.reduce([tensor], options))

    def reduce_keeping(self, tensor: torch.Tensor, dst: int) -> None:
        """`reduce`, where a rank other than `dst` must find its `tensor` unchanged afterwards."""
        if self.group.rank() != dst and not self.reduce_reads_only_at_peers:
            tensor = tensor.clone()
        self.reduce(tensor, dst)

    def all_gather_blocks(self, blocks: list[torch.Tensor], rows: torch.Tensor) -> None:
        """Every rank's `rows` into its block of `blocks` (sizes may differ: NCCL broadcasts in one group)."""
        if self._direct(rows):
            _wait(self.group.allgather([blocks], [rows], self._all_gather_options))
        else:
            dist.all_gather(blocks, rows, group=self.group)

    def reduce_scatter_blocks(self, out: torch.Tensor, blocks: list[torch.Tensor]) -> None:
        """The sum over ranks of block `rank` of `blocks` into `out` (sizes may differ: grouped reduces)."""
        if self._direct(out):
            _wait(self.group.reduce_scatter([out], [blocks], self._reduce_scatter_options))
        else:
            dist.reduce_scatter(out, blocks, group=self.group)

    def exchange(
        self,
        sends: list[tuple[torch.Tensor, int]],
        recvs: list[tuple[torch.Tensor, int]],
        meanwhile: Callable[[], object] | None = None,
    ) -> None:
        """Send each (tensor, peer) of `sends` and receive each of `recvs`: on NCCL as one group launch.

        `meanwhile` (a local copy, say) runs on the caller's stream while the group runs on NCCL's.
        """
        device = (sends or recvs)[0][0].device

        def issue() -> list[dist.Work | None]:
            works = [self.group.send([tensor], peer, 0) for tensor, peer in sends]
            return works + [self.group.recv([tensor], peer, 0) for tensor, peer in recvs]

        self.in_one_group(device, issue, meanwhile)

    def in_one_group(
        self,
        device: torch.device,
        issue: Callable[[], list[dist.Work | None]],
        meanwhile: Callable[[], object] | None = None,
    ) -> None:
        """The group calls that `issue` makes, as one NCCL group on NCCL's stream; `meanwhile` runs on the
        caller's stream in the mean time, before that stream waits for the group. Elsewhere (gloo) the
        calls run one by one, asynchronously, and are waited for after `meanwhile`."""
        coalesced = self.coalesces and device.type != "cpu"
        if coalesced:
            self.group._start_coalescing(device)
        works = issue()
        if coalesced:
            # Inside a group the ops' own works are placeholders; the group's work orders the stream.
            works = [self.group._end_coalescing(device)]
        if meanwhile is not None:
            meanwhile()
        for work in works:
            _wait(work)

    def all_gather_async(self, out: torch.Tensor, rows: torch.Tensor) -> dist.Work | None:
        """`all_gather` on NCCL's stream, for `in_one_group`: the caller waits for the work."""
        return self._all_gather(out, rows, self._async_all_gather_options)

    def broadcast_async(self, tensor: torch.Tensor, src: int) -> dist.Work | None:
        """`broadcast` on NCCL's stream, for `in_one_group`: the caller waits for the work."""
        options = c10d.BroadcastOptions()
        options.rootRank = src
        options.rootTensor = 0
        return self.group.broadcast([tensor], options)
