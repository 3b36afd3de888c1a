"""In a rank: the trace of the collectives its test body issues, in a file the pytest process can always read.

How calls are captured. The ProcessGroup's own methods (`allreduce`, `all_gather_single`, `send`, ...) are
wrapped on the class, and `Work.wait` with them: every torch.distributed function (`dist.all_reduce` calls
`group.allreduce`) and every caller that skips those functions (communicators/group_calls.py calls the
group's methods directly) passes through them. A call is recorded as entered before it starts; completed
when it returns no Work or its Work's `wait()` returns; failed when either raises. The records go into an
mmap'd file (trace_file.py): a hung, crashed or killed rank cannot answer a request, and need not.

Why not torch's Flight Recorder (`TORCH_FR_BUFFER_SIZE`, `_dump_fr_trace_json`; tried on torch 2.13, gloo):
it sees what the backend ran whatever the Python entry point (also functional collectives and DDP's reducer,
which this trace misses), but only the rank itself can dump it. The pytest process would need a thread in
every rank to answer, and a rank hung with the GIL held, stopped or dead answers nothing. On gloo its
entries never leave the state "scheduled" (only `retired` marks a finished one), and it must be on before
the group is created. Host cost per blocking call (benchmarks/harness/collective_trace_overhead.py, CPU time
of the process, 2 shared cores at load average 10-20): +2.2 to +10 us for this trace on torch's fake group,
where a call costs only its Python (3.8-9.4 us untraced); on a one-rank gloo all_reduce of 34-39 us, +4.2 and
+9.3 us for this trace against +8.8 and +10.1 us for the Flight Recorder in the same runs. The lowest
figures are the closest to an idle core: cheap enough to be on by default, and `--dist-trace-collectives
off` removes it for a run that times host overhead.

Limits: collectives issued from C++ (functional collectives under torch.compile/DTensor, DDP's reducer) are
not seen. On NCCL "completed" means the host call returned (the kernel was enqueued), not that the GPU
finished it; the order and signatures of the calls, on which the verdict rests, are exact all the same.
"""

from __future__ import annotations

import functools
import mmap
import os
import struct
from pathlib import Path
from typing import Any

from harness.pytest_plugin.desync import trace_file as layout
from harness.pytest_plugin.desync.desync_verdict import P2P_OPS

# ProcessGroup method -> (operation, index of the argument holding the input tensor(s) or None, kind of peer).
# Input, not output: inputs are what ranks must agree on (gather and scatter: the tensor every rank passes).
_METHODS: dict[str, tuple[str, int | None, str]] = {
    "allreduce": ("all_reduce", 0, ""),
    "allreduce_coalesced": ("all_reduce_coalesced", 0, ""),
    "broadcast": ("broadcast", 0, "root"),
    "reduce": ("reduce", 0, "root"),
    "allgather": ("all_gather", 1, ""),
    "_allgather_base": ("all_gather_single", 1, ""),
    "all_gather_single": ("all_gather_single", 1, ""),
    "allgather_coalesced": ("all_gather_coalesced", 1, ""),
    "allgather_into_tensor_coalesced": ("all_gather_single_coalesced", 1, ""),
    "all_gather_single_coalesced": ("all_gather_single_coalesced", 1, ""),
    "gather": ("gather", 1, "root"),
    "scatter": ("scatter", 0, "root"),
    "reduce_scatter": ("reduce_scatter", 0, ""),
    "_reduce_scatter_base": ("reduce_scatter_single", 1, ""),
    "reduce_scatter_single": ("reduce_scatter_single", 1, ""),
    "reduce_scatter_tensor_coalesced": ("reduce_scatter_single_coalesced", 1, ""),
    "reduce_scatter_single_coalesced": ("reduce_scatter_single_coalesced", 1, ""),
    "alltoall": ("all_to_all", 1, ""),
    "alltoall_base": ("all_to_all_single", 1, ""),
    "all_to_all_single": ("all_to_all_single", 1, ""),
    "barrier": ("barrier", None, ""),
    "monitored_barrier": ("monitored_barrier", None, ""),
    "send": ("send", 0, "peer"),
    "recv": ("recv", 0, "peer"),
    "recv_anysource": ("recv_anysource", 0, ""),
}
_STATE_OFFSET = 7  # of the state byte within a record: after seq (4), group (2), op (1)
_COUNT_OFFSET = layout.HEADER.size - 8  # the header's last field: records written
_HEAD = struct.Struct(layout.RECORD.format[: -len(f"{layout.MAX_DIMS}q")])
_RECORD_OF_NDIM = [struct.Struct(f"{_HEAD.format}{ndim}q") for ndim in range(layout.MAX_DIMS + 1)]
_COUNT = struct.Struct("<Q")
_MAX_PENDING = 4096
_NO_TENSOR = layout.NO_TENSOR_DTYPE

_trace: CollectiveTrace | None = None
_trace_path: Path | None = None


class CollectiveTrace:
    """This rank's trace file, mapped, and the counters of the current test."""

    def __init__(self, path: Path, capacity: int = layout.RECORDS_PER_TEST) -> None:
        import torch
        import torch.distributed as dist

        self._dist = dist
        self._capacity = capacity
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, layout.file_size(capacity))
            self._map = mmap.mmap(fd, layout.file_size(capacity))
        finally:
            os.close(fd)
        self._dtype_codes = {
            getattr(torch, name): code for code, name in enumerate(layout.DTYPES) if hasattr(torch, name)
        }
        self._groups: dict[Any, int] = {}
        self._seq: dict[Any, int] = {}
        self._pending: dict[int, int] = {}  # id(work) -> its record's number
        self._written = 0
        layout.HEADER.pack_into(self._map, 0, layout.MAGIC, layout.VERSION, capacity, 0, 0)

    def start_test(self) -> None:
        """Forget the previous test: sequence numbers start at 1 again, on every group."""
        self._groups.clear()
        self._seq.clear()
        self._pending.clear()
        self._written = 0
        layout.HEADER.pack_into(self._map, 0, layout.MAGIC, layout.VERSION, self._capacity, 0, 0)

    def enter(self, group: Any, op_code: int, tensors: Any, peer: int, p2p: bool) -> int:
        """Record a call as entered; its number, for `finish`. The hot path: every collective runs it."""
        index = self._groups.get(group)
        if index is None:
            index = self._add_group(group)
        # send/recv are numbered per peer and direction: the k-th send to a peer meets its k-th receive.
        key = (index, op_code, peer) if p2p else index
        seq = self._seq[key] = self._seq.get(key, 0) + 1
        number = self._written
        offset = layout.RECORDS_AT + (number % self._capacity) * layout.RECORD.size
        tensor, count = _first_tensor(tensors)
        if tensor is None:
            _HEAD.pack_into(self._map, offset, seq, index, op_code, layout.ENTERED, _NO_TENSOR, peer, 0, 0)
        else:
            shape = tensor.shape
            ndim = len(shape)
            if ndim > layout.MAX_DIMS:
                shape = shape[: layout.MAX_DIMS]
            dtype = self._dtype_codes.get(tensor.dtype, layout.UNKNOWN_DTYPE)
            # Only the dims the tensor has: the reader takes `ndim` of them, older bytes beyond stay unread.
            _RECORD_OF_NDIM[len(shape)].pack_into(
                self._map, offset, seq, index, op_code, layout.ENTERED, dtype, peer, count, ndim, *shape
            )
        self._written = number + 1
        _COUNT.pack_into(self._map, _COUNT_OFFSET, number + 1)
        return number

    def finish(self, number: int, state: int) -> None:
        """Mark record `number` completed or failed, if the ring still holds it."""
        if self._written - self._capacity <= number < self._written:
            self._map[layout.RECORDS_AT + (number % self._capacity) * layout.RECORD.size + _STATE_OFFSET] = (
                state
            )

    def _add_group(self, group: Any) -> int:
        index = min(len(self._groups), layout.MAX_GROUPS - 1)
        self._groups[group] = index
        c10d = self._dist.distributed_c10d
        if group is c10d._world.default_pg:
            label = "WORLD"
        else:  # shown as "group 1" or "group 1 (tp)": torch names groups alike on every rank
            desc = getattr(group, "group_desc", "undefined")
            label = group.group_name + ("" if desc in ("", "undefined") else f" ({desc})")
        try:
            ranks = self._dist.get_process_group_ranks(group)
        except Exception:  # a group torch does not register (created outside new_group): members unknown
            ranks = []
        entry = f"{label}\t{','.join(str(rank) for rank in ranks)}".encode()[: layout.GROUP_ENTRY_BYTES]
        start = layout.GROUPS_AT + index * layout.GROUP_ENTRY_BYTES
        self._map[start : start + layout.GROUP_ENTRY_BYTES] = entry.ljust(layout.GROUP_ENTRY_BYTES, b"\0")
        layout.HEADER.pack_into(
            self._map, 0, layout.MAGIC, layout.VERSION, self._capacity, len(self._groups), self._written
        )
        return index


def set_trace_path(path: Path) -> None:
    """In a fresh rank: where its trace will go, if a test turns tracing on (`start_test`)."""
    global _trace_path
    _trace_path = path


def start_test(enabled: bool) -> None:
    """Before a test body: a fresh trace for this test (the first call maps the file, wraps the methods)."""
    global _trace
    if not enabled or _trace_path is None:
        return
    if _trace is None:
        _trace = CollectiveTrace(_trace_path)
        _wrap_process_group_methods()
    _trace.start_test()


def enable_consistency_check() -> None:
    """Before the process group is created: TORCH_DISTRIBUTED_DEBUG=DETAIL semantics.

    torch then wraps every backend in a ProcessGroupWrapper that, before each collective, compares op, shapes
    and dtypes across ranks over a helper gloo group and raises on every rank at the first difference.
    """
    import torch.distributed as dist

    os.environ["TORCH_DISTRIBUTED_DEBUG"] = "DETAIL"
    # torch read the variable when it was imported, in pytest, before this rank was forked.
    dist.set_debug_level(dist.DebugLevel.DETAIL)


def _wrap_process_group_methods() -> None:
    from torch._C._distributed_c10d import ProcessGroup, Work

    for method, (op, argument, peer_kind) in _METHODS.items():
        original = getattr(ProcessGroup, method, None)
        if original is not None:
            setattr(ProcessGroup, method, _traced(original, op, argument, peer_kind))
    # Subclasses bound with their own wait (FakeWork, say) would bypass a wrapper on Work alone.
    for work_class in _with_subclasses(Work):
        if "wait" in vars(work_class):
            work_class.wait = _traced_wait(vars(work_class)["wait"])


def wrapped_methods() -> dict[type, tuple[str, ...]]:
    """What the trace replaces: each class with the names of its own methods it wraps (ProcessGroup's
    collectives, the `wait` of every Work class that defines one); benchmarks swap them to time the trace."""
    from torch._C._distributed_c10d import ProcessGroup, Work

    found = {ProcessGroup: tuple(name for name in _METHODS if name in vars(ProcessGroup))}
    for work_class in _with_subclasses(Work):
        if "wait" in vars(work_class):
            found[work_class] = ("wait",)
    return found


def _with_subclasses(cls: type) -> list[type]:
    found = [cls]
    for subclass in cls.__subclasses__():
        found += _with_subclasses(subclass)
    return found


def _traced(original: Any, op: str, argument: int | None, peer_kind: str) -> Any:
    op_code = layout.OP_CODE[op]
    p2p = op in P2P_OPS

    @functools.wraps(original)
    def call(group: Any, *args: Any, **kwargs: Any) -> Any:
        trace = _trace
        number = -1
        if trace is not None:
            try:
                tensors = None
                if argument is not None:
                    tensors = args[argument] if len(args) > argument else next(iter(kwargs.values()), None)
                peer = _peer(peer_kind, args, kwargs) if peer_kind else -1
                number = trace.enter(group, op_code, tensors, peer, p2p)
            except Exception:  # the trace must never break the collective it watches
                number = -1
        try:
            work = original(group, *args, **kwargs)
        except BaseException:
            if number >= 0:
                trace.finish(number, layout.FAILED)
            raise
        if number >= 0:
            if work is None:
                trace.finish(number, layout.COMPLETED)
            else:
                pending = trace._pending
                pending[id(work)] = number
                if len(pending) > _MAX_PENDING:  # works nobody waits for (fire and forget)
                    del pending[next(iter(pending))]
        return work

    return call


def _traced_wait(original: Any) -> Any:
    @functools.wraps(original)
    def wait(work: Any, *args: Any, **kwargs: Any) -> Any:
        trace = _trace
        number = trace._pending.pop(id(work), -1) if trace is not None else -1
        try:
            result = original(work, *args, **kwargs)
        except BaseException:
            if number >= 0:
                trace.finish(number, layout.FAILED)
            raise
        if number >= 0:
            trace.finish(number, layout.COMPLETED)
        return result

    return wait


def _first_tensor(value: Any) -> tuple[Any, int]:
    """The first tensor of an argument (a tensor, a list, a list of lists) and how many lie beside it."""
    if type(value) is list or type(value) is tuple:
        if not value:
            return None, 0
        first = value[0]
        if type(first) is list or type(first) is tuple:  # gather's and reduce_scatter's lists per rank
            return (first[0] if first else None), len(first)
        return first, len(value)
    return value, 1


def _peer(kind: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    if kind == "peer" and len(args) > 1 and isinstance(args[1], int):
        return args[1]
    if kind == "root":
        options = args[1] if len(args) > 1 else kwargs.get("opts")
        root = getattr(options, "rootRank", options)
        return root if isinstance(root, int) else -1
    return -1
