"""A rank's trace file read back: a ring that wrapped keeps the last calls and counts the ones it lost."""

from __future__ import annotations

from pathlib import Path

from harness.pytest_plugin.desync import trace_file as layout


def write_ring(path: Path, capacity: int, seqs: range) -> None:
    """A trace file as a rank leaves it after issuing all_reduce #1.. on WORLD, `capacity` records kept."""
    data = bytearray(layout.file_size(capacity))
    written = len(seqs)
    layout.HEADER.pack_into(data, 0, layout.MAGIC, layout.VERSION, capacity, 1, written)
    data[layout.GROUPS_AT : layout.GROUPS_AT + 9] = b"WORLD\t0,1"
    for number, seq in enumerate(seqs):
        offset = layout.RECORDS_AT + (number % capacity) * layout.RECORD.size
        dims = (8,) + (0,) * (layout.MAX_DIMS - 1)
        op, state = layout.OP_CODE["all_reduce"], layout.COMPLETED
        layout.RECORD.pack_into(data, offset, seq, 0, op, state, 0, -1, 1, 1, *dims)
    path.write_bytes(bytes(data))


def test_a_wrapped_ring_keeps_the_last_calls_and_counts_the_dropped_ones(tmp_path: Path):
    write_ring(tmp_path / "rank1.trace", capacity=3, seqs=range(1, 8))
    trace = layout.read_trace(tmp_path / "rank1.trace", 1)
    assert trace is not None
    assert [call.seq for call in trace.calls] == [5, 6, 7]
    assert trace.dropped == 4


def test_a_ring_that_did_not_wrap_dropped_nothing(tmp_path: Path):
    write_ring(tmp_path / "rank0.trace", capacity=3, seqs=range(1, 3))
    trace = layout.read_trace(tmp_path / "rank0.trace", 0)
    assert trace is not None and [call.seq for call in trace.calls] == [1, 2] and trace.dropped == 0
