"""Peer memory: a buffer on each rank's GPU that the other ranks of the group read directly.

NCCL moves an uneven share at point-to-point speed (on 2 x H200, 110-120 GB/s at 64-256 MiB, where the equal
all-gather reaches 205-240 busbw), and its equal collectives need the same length on every rank. On one host
with NVLink, a rank can instead read its peers' rows out of their memory with the GPU's copy engines: no
SMs, no NCCL channels, any length per peer. torch's symmetric memory (`torch.distributed._symmetric_memory`,
the CUDA backend) maps every rank's buffer into every other rank's address space; a copy from a peer's
buffer is then a plain `copy_` on this rank's stream, and `barrier` orders the ranks on the device.

`PeerWorkspace` holds one such buffer per group, grown (collectively: every rank asks for the same size,
from the split every rank sees) to the next power of two of the largest request, and kept: re-mapping costs
milliseconds, so a workspace that shrank and grew again would cost more than the memory it frees.

A way that uses it writes its region, meets the other ranks at a barrier, reads the peers' regions, and must
not overwrite its region before every peer has read it. Large calls end on a second barrier. Small ones
(MoE dispatch and combine, where each device operation costs host time that the round trip pays) alternate
between the two halves of the buffer instead: call k + 1 writes the half call k did not use, and its barrier
is reached by every rank only after that rank's reads of call k, so call k + 2 may overwrite call k's half.
One barrier per call, for twice the memory (`begin` and `end` keep that protocol; SLOTTED_BYTES bounds it).

Multicast (NVLS) is never asked for: the buffer is only read by plain copies.
"""

from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist

# Set to 0 to keep every uneven collective on NCCL (peer memory is then never allocated).
ENV_SWITCH = "COMM_HARNESS_PEER_MEMORY"
# The smallest workspace allocated: small gathers then never re-map it.
MIN_BYTES = 1 << 20
# Calls that write at most this much alternate between two halves of the workspace (one barrier per call);
# larger ones use all of it and end on a barrier (at their sizes a barrier costs nothing).
SLOTTED_BYTES = 32 << 20


class PeerWorkspace:
    """One peer-readable buffer for a group's ranks, allocated on first use, mapped on every rank."""

    def __init__(self, group: dist.ProcessGroup) -> None:
        self.group = group
        self._usable: bool | None = None
        self._buffer: torch.Tensor | None = None
        self._handle = None
        self._spaces: list[torch.Tensor] | None = None
        # The half of the buffer the last small call used, and whether its reads may still be running on a
        # peer (no barrier since): a large call, or a release, must meet the peers first.
        self._last_half = 1
        self._open = False
        self._this_call_half: int | None = None
        # Views of the mapping that a way makes once per layout and reuses
        # (uneven_rows.gather_list_peer_push); they go with the mapping.
        self.layouts: dict[object, object] = {}

    def usable(self, device: torch.device) -> bool:
        """Whether every rank of the group can read every other rank's GPU memory (one node, peer access,
        torch with symmetric memory, a workspace mapped, not switched off by COMM_HARNESS_PEER_MEMORY=0).
        Collectives the first time; every rank gets the same answer, so every rank takes the same way."""
        if self._usable is None:
            usable = _all_ranks(self.group, _reachable(self.group, device))
            if usable:
                try:
                    self.handle(MIN_BYTES, device).barrier(channel=0)
                    mapped = True
                except Exception:  # any failure means: not here (the NCCL ways remain)
                    mapped = False
                usable = _all_ranks(self.group, mapped)
            self._usable = usable
        return self._usable

    def handle(self, nbytes: int, device: torch.device):
        """The group's mapped workspace of at least `nbytes` bytes (a collective when it must grow)."""
        if self._buffer is None or self._buffer.numel() < nbytes:
            import torch.distributed._symmetric_memory as symm_mem

            size = max(MIN_BYTES, 1 << (max(nbytes, 1) - 1).bit_length())
            # The old mapping goes once no peer reads it and this device has run what is queued (release).
            # Growth is rare (powers of two): the wait costs little.
            self.release()
            self._buffer = symm_mem.empty(size, dtype=torch.uint8, device=device)
            self._handle = symm_mem.rendezvous(self._buffer, self.group)
        return self._handle

    def release(self) -> None:
        """Unmap the workspace once no peer reads it any more and this rank's device has finished the work
        queued on it; the next uneven collective that needs it maps a new one. A collective when the last
        call was a small one (its closing barrier), as growth and `destroy` are on every rank alike."""
        if self._buffer is not None:
            if self._open:
                self._handle.barrier(channel=0)
            torch.cuda.synchronize(self._buffer.device)
        self._handle = self._buffer = self._spaces = None
        self._open = False
        self.layouts.clear()

    def begin(self, nbytes: int, device: torch.device) -> tuple[object, list[torch.Tensor], int]:
        """Start a call that writes `nbytes` into this rank's workspace: the handle, every rank's workspace
        as flat bytes (`spaces`), and the byte offset where this call's region starts on every rank. The
        caller writes, meets the peers with `handle.barrier(channel=0)`, reads, then calls `end`."""
        if nbytes <= SLOTTED_BYTES:
            # The half the previous small call did not use: no peer reads it any more (see the module).
            handle, spaces = self.spaces(2 * max(nbytes, 1), device)
            half = 1 - self._last_half
            self._this_call_half = half
            return handle, spaces, half * (self._buffer.numel() // 2)
        handle, spaces = self.spaces(nbytes, device)
        if self._open:
            handle.barrier(channel=0)  # the last small call's readers, done before this call overwrites
            self._open = False
        self._this_call_half = None
        return handle, spaces, 0

    def end(self) -> None:
        """End the call `begin` started: a large call meets the peers (nobody reads it afterwards); a small
        call leaves its half to be closed by the next call's barrier."""
        if self._this_call_half is None:
            self._handle.barrier(channel=0)
        else:
            self._last_half, self._open = self._this_call_half, True

    def spaces(self, nbytes: int, device: torch.device):
        """`handle(nbytes, device)` and every rank's whole workspace as flat bytes, indexed by group rank:
        made once per mapping, so a call slices them instead of asking the handle for each view."""
        handle = self.handle(nbytes, device)
        if self._spaces is None:
            size = self._buffer.numel()
            self._spaces = [handle.get_buffer(rank, [size], torch.uint8) for rank in range(self.group.size())]
        return handle, self._spaces


def _reachable(group: dist.ProcessGroup, device: torch.device) -> bool:
    """Whether this rank can read every other rank's GPU memory: every rank tells its node (host name and
    NCCL_HOSTID: emulated nodes must not share memory either), its GPU and the GPUs it sees; reachable when
    all are on one node and this rank sees, and may access, every other's GPU (CUDA_VISIBLE_DEVICES can
    hide them)."""
    facts = _local_facts(device)
    everyone = _from_every_rank(group, facts)
    if facts is None or any(each is None for each in everyone):
        return False
    if len({each["node"] for each in everyone}) != 1:
        return False
    visible = facts["visible"]
    for each in everyone:
        peer = each["gpu"]
        if peer != facts["gpu"] and (
            peer not in visible or not torch.cuda.can_device_access_peer(device.index, visible.index(peer))
        ):
            return False
    return True


def _local_facts(device: torch.device) -> dict[str, object] | None:
    if device.type != "cuda" or os.environ.get(ENV_SWITCH, "1") == "0" or not _has_symmetric_memory():
        return None
    visible = [str(torch.cuda.get_device_properties(i).uuid) for i in range(torch.cuda.device_count())]
    return {
        "node": (socket.gethostname(), os.environ.get("NCCL_HOSTID", "")),
        "gpu": visible[device.index],
        "visible": visible,
    }


def _all_ranks(group: dist.ProcessGroup, verdict: bool) -> bool:
    return all(_from_every_rank(group, verdict))


def _from_every_rank(group: dist.ProcessGroup, value: object) -> list[object]:
    everyone: list[object] = [None] * group.size()
    dist.all_gather_object(everyone, value, group=group)
    return everyone


def _has_symmetric_memory() -> bool:
    try:
        import torch.distributed._symmetric_memory as symm_mem
    except ImportError:
        return False
    return hasattr(symm_mem, "empty") and hasattr(symm_mem, "rendezvous")
