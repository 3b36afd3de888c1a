"""The GPU-only logic of the uneven collectives, exercised on the CPU with stand-ins: the policy's list
tables, the ranks' agreement on whether peer memory is usable, and the peer push's cached layouts.

Peer memory exists only on CUDA GPUs of one host, so the conformance suite never takes those ways on the
CPU. What decides and lays them out is plain Python and tensor views, though: here ranks are threads of
this process, their exchange of facts a barrier, and their peer-readable workspaces CPU byte tensors that
every thread can write (as the shared file stands in for symmetric memory elsewhere). What only a GPU run
can check: the mapping itself (symm_mem.empty/rendezvous), peer access between devices, the device-side
barrier's ordering of copies on streams, and the speed the policy's bounds were measured at.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import SimpleNamespace

import pytest
import torch

from communicators import peer_memory, uneven_rows
from communicators.cuda import MIB, NCCL_UNEVEN_POLICY
from communicators.tensor_layout import row_split

# -- the policy's list tables


@pytest.mark.parametrize(
    ("world_size", "total", "peer_memory_usable", "way"),
    [
        (2, 1 << 10, False, "padded_window"),
        (2, 1 << 10, True, "peer_push"),
        (2, 64 * MIB, False, "point_to_point"),
        (2, 64 * MIB, True, "peer_copy"),
        (4, 1 << 10, True, "point_to_point"),
        (4, 64 * MIB, False, "point_to_point"),
    ],
)
def test_the_nccl_policy_picks_list_ways_from_its_list_tables(world_size, total, peer_memory_usable, way):
    assert NCCL_UNEVEN_POLICY.list_way(world_size, total, peer_memory_usable) == way
    assert way in uneven_rows.LIST_GATHER_WAYS


def test_list_ways_come_from_the_list_tables_alone():
    policy = uneven_rows.UnevenPolicy(
        gather_two_ranks=((0, "window"),),
        gather_more_ranks=((0, "sequential"),),
        scatter_two_ranks=((0, "window"),),
        scatter_more_ranks=((0, "grouped"),),
        list_two_ranks=((0, "padded_window"), (1 << 20, "grouped")),
        list_more_ranks=((0, "padded"),),
    )
    assert [policy.list_way(2, size) for size in (0, 1 << 20)] == ["padded_window", "grouped"]
    assert policy.list_way(3, 1 << 30) == "padded"


# -- ranks as threads


def on_threads(world_size: int, body: Callable[[int], object]) -> list[object]:
    """`body(rank)` on one thread per rank; the results in rank order, the first exception re-raised."""
    results: list[object] = [None] * world_size
    errors: list[BaseException] = []

    def run(rank: int) -> None:
        try:
            results[rank] = body(rank)
        except BaseException as error:  # re-raised in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(rank,)) for rank in range(world_size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    if errors:
        raise errors[0]
    return results


class ThreadExchange:
    """`peer_memory._from_every_rank` between threads: every rank's value, in rank order, to every rank."""

    def __init__(self, world_size: int) -> None:
        self.rank = threading.local()
        self.values: list[object] = [None] * world_size
        self.barrier = threading.Barrier(world_size, timeout=10)

    def __call__(self, group: object, value: object) -> list[object]:
        self.values[self.rank.value] = value
        self.barrier.wait()
        everyone = list(self.values)
        self.barrier.wait()  # nobody overwrites a value before every rank has read them all
        return everyone


class BarrierHandle:
    """A symmetric-memory handle's barrier, between threads."""

    def __init__(self, barrier: threading.Barrier) -> None:
        self._barrier = barrier

    def barrier(self, channel: int = 0) -> None:
        self._barrier.wait()


@pytest.fixture
def exchange(monkeypatch):
    def make(world_size: int) -> ThreadExchange:
        found = ThreadExchange(world_size)
        monkeypatch.setattr(peer_memory, "_from_every_rank", found)
        return found

    return make


# -- agreement on peer memory


@pytest.mark.parametrize("refusing_rank", [None, 0, 2])
def test_every_rank_takes_peer_memory_or_none_does(exchange, monkeypatch, refusing_rank):
    # One rank that cannot reach its peers (another node, a GPU hidden from it) keeps every rank on NCCL:
    # mapping the workspace is a collective, and a rank that went on alone would wait in it for ever.
    found = exchange(3)
    monkeypatch.setattr(peer_memory, "_reachable", lambda group, device: found.rank.value != refusing_rank)
    mapping = BarrierHandle(threading.Barrier(3, timeout=5))
    mapped_by: list[int] = []

    def handle(workspace, nbytes, device):
        mapped_by.append(found.rank.value)
        return mapping

    monkeypatch.setattr(peer_memory.PeerWorkspace, "handle", handle)

    def usable(rank: int) -> bool:
        found.rank.value = rank
        return peer_memory.PeerWorkspace(group=None).usable(torch.device("cuda", rank))

    assert on_threads(3, usable) == [refusing_rank is None] * 3
    assert sorted(mapped_by) == ([0, 1, 2] if refusing_rank is None else [])


def gpu_facts(host: str, gpu: int, visible: int = 2, host_id: str = "") -> dict[str, object]:
    return {"node": (host, host_id), "gpu": f"GPU-{gpu}", "visible": [f"GPU-{i}" for i in range(visible)]}


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        ([gpu_facts("h", 0), gpu_facts("h", 1)], [True, True]),
        # Emulated nodes on one host: each presents its own NCCL_HOSTID and must not share memory.
        ([gpu_facts("h", 0, host_id="node0"), gpu_facts("h", 1, host_id="node1")], [False, False]),
        ([gpu_facts("a", 0), gpu_facts("b", 1)], [False, False]),
        # Rank 1 has no facts (peer memory switched off there, or no symmetric memory): nobody may use it.
        ([gpu_facts("h", 0), None], [False, False]),
        # CUDA_VISIBLE_DEVICES hides rank 1's GPU from rank 0 (but not rank 0's from rank 1).
        ([gpu_facts("h", 0, visible=1), gpu_facts("h", 1)], [False, True]),
    ],
)
def test_a_rank_reaches_its_peers_only_on_one_node_with_every_peer_gpu_visible(
    exchange, monkeypatch, facts, expected
):
    found = exchange(2)
    monkeypatch.setattr(peer_memory, "_local_facts", lambda device: facts[found.rank.value])
    monkeypatch.setattr(torch.cuda, "can_device_access_peer", lambda device, peer: True)

    def reachable(rank: int) -> bool:
        found.rank.value = rank
        return peer_memory._reachable(None, torch.device("cuda", rank))

    assert on_threads(2, reachable) == expected


def test_a_ranks_facts_name_its_node_by_host_and_nccl_hostid_and_its_gpus_by_uuid(monkeypatch):
    monkeypatch.setattr(peer_memory, "_has_symmetric_memory", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(
        torch.cuda, "get_device_properties", lambda index: SimpleNamespace(uuid=f"GPU-{index}")
    )
    monkeypatch.delenv(peer_memory.ENV_SWITCH, raising=False)
    facts = []
    for host_id in ("node0", "node1"):  # two emulated nodes of one host
        monkeypatch.setenv("NCCL_HOSTID", host_id)
        facts.append(peer_memory._local_facts(torch.device("cuda", 1)))
    assert facts[0]["node"] != facts[1]["node"]
    assert (facts[0]["gpu"], facts[0]["visible"]) == ("GPU-1", ["GPU-0", "GPU-1"])
    assert peer_memory._local_facts(torch.device("cpu")) is None
    monkeypatch.setenv(peer_memory.ENV_SWITCH, "0")
    assert peer_memory._local_facts(torch.device("cuda", 1)) is None


# -- the peer push's layouts


class SharedWorkspace(peer_memory.PeerWorkspace):
    """A rank's PeerWorkspace whose buffers are CPU tensors every rank (thread) writes: its own begin/end
    protocol and layout cache, without mapping anything."""

    def __init__(self, rank: int, buffers: list[torch.Tensor], barrier: threading.Barrier) -> None:
        super().__init__(group=None)
        self._buffer, self._spaces = buffers[rank], buffers
        self._handle = BarrierHandle(barrier)

    def handle(self, nbytes: int, device: torch.device) -> BarrierHandle:
        assert nbytes <= self._buffer.numel(), "the stand-in's buffers are too small for this test"
        return self._handle


def rows_of(rank: int, count: int, dtype: torch.dtype, row_shape: tuple[int, ...]) -> torch.Tensor:
    values = torch.arange(count * max(1, torch.Size(row_shape).numel())) + 1000 * rank
    return values.reshape(count, *row_shape).to(dtype)


def test_the_peer_push_gathers_lists_of_any_dtypes_through_its_cached_layouts():
    # MoE dispatch gathers hidden states and router weights of a few shapes; the same sizes and row
    # shapes come back in other dtypes (bf16 and fp32 activations, int32 and int64 ids): a layout cached
    # for one dtype would copy the other's bytes with the wrong widths.
    sizes, world_size = (3, 0, 2), 3
    barrier = threading.Barrier(world_size, timeout=10)
    buffers = [torch.zeros(peer_memory.MIN_BYTES, dtype=torch.uint8) for _ in range(world_size)]
    calls_in_order = [
        (torch.float32, torch.int64),
        (torch.bfloat16, torch.int32),
        (torch.float32, torch.int64),  # the first layout again, from the cache
        (torch.float16, torch.int64),
    ]

    def rank_body(rank: int) -> list[list[torch.Tensor]]:
        # The peer push asks its GroupCalls for nothing but the workspace.
        calls = SimpleNamespace(peer_workspace=SharedWorkspace(rank, buffers, barrier))
        split = row_split(sizes, world_size, rank)
        gathered = []
        for dtypes in calls_in_order:
            tensors = [rows_of(rank, sizes[rank], dtypes[0], (4,)), rows_of(rank, sizes[rank], dtypes[1], ())]
            gathered.append(uneven_rows.gather_list_peer_push(tensors, split, calls))
        return gathered

    for rank, gathered in enumerate(on_threads(world_size, rank_body)):
        for dtypes, outs in zip(calls_in_order, gathered, strict=True):
            expected = [
                torch.cat([rows_of(r, sizes[r], dtypes[0], (4,)) for r in range(world_size)]),
                torch.cat([rows_of(r, sizes[r], dtypes[1], ()) for r in range(world_size)]),
            ]
            assert [out.dtype for out in outs] == list(dtypes), (rank, dtypes)
            for out, want in zip(outs, expected, strict=True):
                assert torch.equal(out, want), (rank, dtypes)
