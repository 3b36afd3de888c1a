"""The layout of a rank's collective trace file, shared by the rank that writes it and the pytest process that
reads it (`read_trace`, which needs no torch).

A rank maps its file (`rankN.trace`, next to its stack file) and writes fixed-size records into it; the
kernel's page cache makes every write visible to a reader of the file at once, so the pytest process reads
the trace of a rank that hangs, crashed or was killed without asking it anything. Layout, little-endian:

    header   magic, version, capacity, groups in the table, records written in this test (a ring beyond that)
    groups   MAX_GROUPS entries: "label\\tglobal ranks" in UTF-8, NUL-padded
    records  `capacity` records of RECORD: seq, group, op, state, dtype, peer, tensors, ndim, dims[MAX_DIMS]
"""

from __future__ import annotations

import struct
from pathlib import Path

from harness.pytest_plugin.desync.desync_verdict import RankTrace, TracedCall

MAGIC = b"CHTRACE1"
HEADER = struct.Struct("<8sIIIxxxxQ")  # magic, version, capacity, groups, records written
VERSION = 1
MAX_GROUPS = 64
GROUP_ENTRY_BYTES = 256
MAX_DIMS = 8
# seq, group, op, state, dtype, peer (root of a rooted op, peer of a send/recv, -1), tensors, ndim, dims
RECORD = struct.Struct(f"<IHBBBxhHB{MAX_DIMS}q")
GROUPS_AT = HEADER.size
RECORDS_AT = GROUPS_AT + MAX_GROUPS * GROUP_ENTRY_BYTES
# The ring keeps each rank's last RECORDS_PER_TEST collectives of a test (128 KiB per rank).
RECORDS_PER_TEST = 1536

# States of a record; EMPTY never reaches a reader that honours the record count.
EMPTY, ENTERED, COMPLETED, FAILED = 0, 1, 2, 3
STATE_NAMES = {ENTERED: "entered", COMPLETED: "completed", FAILED: "failed"}

# Operation codes: the names torch.distributed gives the calls (torch >= 2.13 spelling).
OPS = (
    "all_reduce",
    "all_reduce_coalesced",
    "broadcast",
    "reduce",
    "all_gather",
    "all_gather_single",
    "all_gather_coalesced",
    "all_gather_single_coalesced",
    "gather",
    "scatter",
    "reduce_scatter",
    "reduce_scatter_single",
    "reduce_scatter_single_coalesced",
    "all_to_all",
    "all_to_all_single",
    "barrier",
    "monitored_barrier",
    "send",
    "recv",
    "recv_anysource",
)
OP_CODE = {name: code for code, name in enumerate(OPS)}

# Dtype codes, by torch's attribute name; a dtype not listed is written as UNKNOWN_DTYPE ("?").
DTYPES = (
    "float32",
    "float64",
    "float16",
    "bfloat16",
    "int8",
    "uint8",
    "int16",
    "int32",
    "int64",
    "bool",
    "complex64",
    "complex128",
    "float8_e4m3fn",
    "float8_e5m2",
    "uint16",
    "uint32",
    "uint64",
)
UNKNOWN_DTYPE = 255
NO_TENSOR_DTYPE = 254


def trace_path_of(stack_path: str | Path) -> Path:
    """A rank's trace file: next to its stack file (`rank1.stack` -> `rank1.trace`)."""
    return Path(stack_path).with_suffix(".trace")


def file_size(capacity: int = RECORDS_PER_TEST) -> int:
    """Bytes of a trace file holding `capacity` records."""
    return RECORDS_AT + capacity * RECORD.size


def read_trace(path: Path, rank: int) -> RankTrace | None:
    """The trace a rank left in `path`, or None when it wrote none (tracing off, or it died before)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if len(data) < RECORDS_AT:
        return None
    magic, version, capacity, group_count, written = HEADER.unpack_from(data, 0)
    if magic != MAGIC or version != VERSION or len(data) < file_size(capacity):
        return None
    groups = [_read_group(data, index) for index in range(min(group_count, MAX_GROUPS))]
    calls = []
    for number in range(max(0, written - capacity), written):
        fields = RECORD.unpack_from(data, RECORDS_AT + (number % capacity) * RECORD.size)
        seq, group, op, state, dtype, peer, tensors, ndim = fields[:8]
        if state == EMPTY or group >= len(groups) or op >= len(OPS):
            continue  # a record being written as the rank died
        label, members = groups[group]
        calls.append(
            TracedCall(
                group=label,
                members=members,
                seq=seq,
                op=OPS[op],
                state=STATE_NAMES.get(state, "entered"),
                dtype=_dtype_name(dtype),
                shape=tuple(fields[8 : 8 + min(ndim, MAX_DIMS)]),
                tensors=tensors,
                peer=None if peer < 0 else peer,
            )
        )
    return RankTrace(rank, tuple(calls), dropped=max(0, written - capacity))


def _read_group(data: bytes, index: int) -> tuple[str, tuple[int, ...]]:
    start = GROUPS_AT + index * GROUP_ENTRY_BYTES
    text = data[start : start + GROUP_ENTRY_BYTES].rstrip(b"\0").decode(errors="replace")
    label, _, ranks = text.partition("\t")
    members = tuple(int(rank) for rank in ranks.split(",") if rank.strip().isdigit())
    return label or f"#{index}", members


def _dtype_name(code: int) -> str | None:
    if code == NO_TENSOR_DTYPE:
        return None
    return DTYPES[code] if code < len(DTYPES) else "?"
