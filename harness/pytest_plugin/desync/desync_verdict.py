"""Which rank went astray, and in which call: the verdict on the ranks' collective traces of a failed test.

Pure analysis, in the pytest process, on what `trace_file.read_trace` gives: no torch, no processes. Per
group, the ranks' collectives are aligned by sequence number (the n-th collective each rank issued on that
group in the test); the first number at which they disagree is the finding:

- `desync`: ranks issued different operations (one skipped a collective, or two came in another order);
- `mismatch`: the same operation with other dtypes or shapes, where the operation needs them equal;
- a rank never got to a collective the others are in: it is elsewhere (in another collective, in Python code,
  or no longer in the test body).

The reference is the majority; without one (two ranks, or an even split), the side of the lowest rank.
A rank's trace is a ring of its last calls: when older ones fell out, the verdict says so, and the table shows
"?" (not "-") where that rank's calls are no longer known.
"""

from __future__ import annotations

import re
import sysconfig
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

# Operations whose tensors must have one dtype and one shape on every rank of the group. The others
# (all_to_all with uneven splits, gather/scatter, whose root alone passes lists) may differ in shape.
SHAPES_MUST_MATCH = frozenset(
    {
        "all_reduce",
        "all_reduce_coalesced",
        "broadcast",
        "reduce",
        "all_gather",
        "all_gather_single",
        "all_gather_coalesced",
        "all_gather_single_coalesced",
        "reduce_scatter",
        "reduce_scatter_single",
        "reduce_scatter_single_coalesced",
    }
)
P2P_OPS = frozenset({"send", "recv", "recv_anysource"})
WORLD = "WORLD"
# At most this many sequence numbers per group in the table: the first disagreement and what follows it.
TABLE_ROWS = 12
FORGOTTEN = "?"  # the table's cell for a call that fell out of a rank's ring


@dataclass(frozen=True)
class TracedCall:
    """One collective (or send/recv) a rank issued in the test."""

    group: str  # "WORLD" or the group's label; the same on every rank
    members: tuple[int, ...]  # the group's global ranks
    seq: int  # the n-th call of this rank on this group (per peer and direction for send/recv)
    op: str
    state: str  # "entered" (not known to be complete), "completed" or "failed" (raised)
    dtype: str | None  # None: the call takes no tensor (barrier)
    shape: tuple[int, ...] = ()
    tensors: int = 1  # how many tensors of that signature the call passed (a list or coalesced call)
    peer: int | None = None  # the root of a rooted op, the peer of a send/recv (group rank)

    @property
    def signature(self) -> str:
        """'float32[8, 4]', '3 x float32[8]' or '' (no tensor)."""
        if self.dtype is None:
            return ""
        text = f"{self.dtype}[{', '.join(str(size) for size in self.shape)}]"
        return f"{self.tensors} x {text}" if self.tensors > 1 else text

    @property
    def name(self) -> str:
        """'all_reduce #3', 'send to rank 1 #2'."""
        if self.op in P2P_OPS and self.peer is not None:
            direction = "to" if self.op == "send" else "from"
            return f"{self.op} {direction} rank {self.peer} #{self.seq}"
        return f"{self.op} #{self.seq}"


@dataclass(frozen=True)
class RankTrace:
    """A rank's calls in the current test, oldest first; `dropped` older ones no longer in its ring."""

    rank: int
    calls: tuple[TracedCall, ...]
    dropped: int = 0


@dataclass(frozen=True)
class RankSituation:
    """Where a rank was when the test was judged, as the pytest process saw it."""

    running: bool  # still running when stopped (hung or blocked)
    location: str | None = None  # a running rank's innermost frame of test code: "test_x.py:12 test_hang"
    ended: str = ""  # how a rank that is not running ended: "failed", "passed", "killed by SIGABRT", ...


@dataclass(frozen=True)
class CollectiveFindings:
    """The verdict (its first line is the headline; empty when the traces agree) and the per-rank table."""

    verdict: tuple[str, ...]
    table: str


def analyse(
    traces: Iterable[RankTrace | None], situations: Mapping[int, RankSituation]
) -> CollectiveFindings | None:
    """The verdict and table for the ranks' traces; None when no rank left a trace (tracing off)."""
    traced = {trace.rank: trace for trace in traces if trace is not None}
    if not traced:
        return None
    verdict: list[str] = []
    disagreements: dict[str, int] = {}
    for group, members in _groups(traced.values()):
        by_rank = {
            rank: {
                call.seq: call
                for call in traced[rank].calls
                if call.group == group and call.op not in P2P_OPS
            }
            for rank in members
            if rank in traced
        }
        found = _first_disagreement(group, by_rank, traced, situations)
        if found is not None:
            seq, sentence = found
            disagreements[group] = seq
            verdict.append(sentence)
    if not verdict:
        # Nobody waits for a rank that is missing; a rank hung in Python code is still worth the headline.
        for rank, situation in sorted(situations.items()):
            last = _last_call(traced.get(rank))
            if situation.running and situation.location and (last is None or last.state != "entered"):
                verdict.append(f"rank {rank} is not in a collective: it is in {situation.location}")
    if verdict:
        # After the finding, never before it: the first line stays the headline.
        verdict += _ring_overflows(traced)
    return CollectiveFindings(tuple(verdict), _table(traced, disagreements))


def _ring_overflows(traced: Mapping[int, RankTrace]) -> list[str]:
    """A line per rank whose ring dropped older calls: the verdict saw only that rank's last ones."""
    return [
        f"rank {rank}'s trace holds its last {len(trace.calls)} calls; {trace.dropped} older ones fell out "
        "of the ring"
        for rank, trace in sorted(traced.items())
        if trace.dropped
    ]


def innermost_test_frame(stack: str, roots: Iterable[str] = ()) -> str | None:
    """'test_x.py:12 test_hang': the innermost frame of the test's thread outside Python's and torch's files.

    `stack` is a faulthandler dump (most recent call first) cut below the rank's entry frame, whose thread is
    the one running the test; `roots` are directories to show paths relative to (the first that contains it).
    """
    for thread in re.split(r"\n(?=\S)", stack.strip()):
        frames = _FRAME.findall(thread)
        if not any(_ENTRY_MARK in line for line in thread.splitlines()):
            continue
        for path, line, function in frames:
            if not _is_library(path):
                return f"{_shown(path, roots)}:{line} {function}"
        if frames:
            path, line, function = frames[0]
            return f"{_shown(path, roots)}:{line} {function}"
    return None


def describe_ranks(ranks: Iterable[int]) -> str:
    """'rank 2' or 'ranks 0, 1, 3'."""
    ranks = sorted(ranks)
    if len(ranks) == 1:
        return f"rank {ranks[0]}"
    return "ranks " + ", ".join(str(rank) for rank in ranks)


def _groups(traces: Iterable[RankTrace]) -> list[tuple[str, tuple[int, ...]]]:
    """Every group some rank used, WORLD first, then in the order of first use; with its global ranks."""
    members: dict[str, set[int]] = {}
    world: set[int] = set()
    for trace in sorted(traces, key=lambda t: t.rank):
        world.add(trace.rank)
        for call in trace.calls:
            members.setdefault(call.group, set()).update(call.members)
    ordered = sorted(members, key=lambda group: group != WORLD)
    return [(group, tuple(sorted(members[group] or world))) for group in ordered]


def _first_disagreement(
    group: str,
    by_rank: dict[int, dict[int, TracedCall]],
    traced: Mapping[int, RankTrace],
    situations: Mapping[int, RankSituation],
) -> tuple[int, str] | None:
    last_seq = {rank: max(calls, default=0) for rank, calls in by_rank.items()}
    for seq in sorted({seq for calls in by_rank.values() for seq in calls}):
        present = {rank: calls[seq] for rank, calls in by_rank.items() if seq in calls}
        # A rank whose ring no longer holds `seq` but went past it is not missing, merely forgotten.
        absent = sorted(rank for rank in by_rank if last_seq[rank] < seq)
        by_op = _split(present, lambda call: call.op)
        if len(by_op) > 1:
            return seq, _desync(group, seq, by_op, traced, situations)
        op = next(iter(by_op))
        if op in SHAPES_MUST_MATCH:
            by_signature = _split(present, lambda call: call.signature)
            if len(by_signature) > 1:
                return seq, _mismatch(group, seq, op, by_signature)
        if absent:
            return seq, _missing(group, seq, op, present, absent, traced, situations)
    return None


def _split(present: dict[int, TracedCall], key) -> dict[str, list[int]]:
    sides: dict[str, list[int]] = {}
    for rank, call in sorted(present.items()):
        sides.setdefault(key(call), []).append(rank)
    return sides


def _reference(sides: dict[str, list[int]]) -> str:
    """The majority's key; on a tie, the side with the lowest rank."""
    return max(sides, key=lambda side: (len(sides[side]), -min(sides[side])))


def _desync(
    group: str,
    seq: int,
    by_op: dict[str, list[int]],
    traced: Mapping[int, RankTrace],
    situations: Mapping[int, RankSituation],
) -> str:
    expected = _reference(by_op)
    ranks = by_op[expected]
    odd = sorted(rank for op, side in by_op.items() if op != expected for rank in side)
    calls = {rank: _call_at(traced[rank], group, seq) for rank in ranks}
    where = [_instead(rank, _call_at(traced[rank], group, seq), traced, situations, group) for rank in odd]
    return (
        f"desync: {describe_ranks(odd)} never entered {expected} #{seq} of group {group} "
        f"({describe_ranks(ranks)} {_waiting(calls.values())}); " + "; ".join(where)
    )


def _mismatch(group: str, seq: int, op: str, by_signature: dict[str, list[int]]) -> str:
    expected = _reference(by_signature)
    odd = [(side, ranks) for side, ranks in by_signature.items() if side != expected]
    parts = [f"{describe_ranks(ranks)} passed {side or 'no tensor'}" for side, ranks in odd]
    parts.append(f"{describe_ranks(by_signature[expected])} passed {expected or 'no tensor'}")
    where = "" if group == WORLD else f" of group {group}"
    return f"mismatch: {op} #{seq}{where}: " + ", ".join(parts)


def _missing(
    group: str,
    seq: int,
    op: str,
    present: dict[int, TracedCall],
    absent: list[int],
    traced: Mapping[int, RankTrace],
    situations: Mapping[int, RankSituation],
) -> str:
    waiting = f"{describe_ranks(present)} {_waiting(present.values())}"
    call = f"{op} #{seq} of group {group}"
    in_python = [
        rank
        for rank in absent
        if situations.get(rank, RankSituation(False)).running
        and situations[rank].location
        and _position_is_python(traced.get(rank))
    ]
    gone = [
        rank
        for rank in absent
        if not situations.get(rank, RankSituation(False)).running and _position_is_python(traced.get(rank))
    ]
    if gone and len(gone) == len(absent):  # not astray, just gone: failed, crashed or exited before the call
        ended = "; ".join(f"rank {rank} ended ({situations[rank].ended or 'ended'})" for rank in absent)
        return f"{ended} before entering {call} ({waiting})"
    if in_python and len(in_python) == len(absent):
        places = "; ".join(
            f"rank {rank} is not in a collective: it is in {situations[rank].location}" for rank in absent
        )
        return f"{places} ({describe_ranks(present)} {_waiting(present.values(), call)})"
    where = "; ".join(_position(rank, traced.get(rank), situations, group) for rank in absent)
    return f"desync: {describe_ranks(absent)} never entered {call} ({waiting}); {where}"


def _waiting(calls: Iterable[TracedCall], what: str = "it") -> str:
    """'wait in it' / 'waits in it' (all still in the call), 'completed it' or 'entered it'."""
    verb = _verb(calls)
    return f"{verb} in {what}" if verb.startswith("wait") else f"{verb} {what}"


def _verb(calls: Iterable[TracedCall]) -> str:
    calls = list(calls)
    states = {call.state for call in calls}
    if states == {"entered"}:
        return "waits" if len(calls) == 1 else "wait"
    if states == {"completed"}:
        return "completed"
    return "entered"


def _instead(
    rank: int,
    call: TracedCall | None,
    traced: Mapping[int, RankTrace],
    situations: Mapping[int, RankSituation],
    group: str,
) -> str:
    """What a rank that issued another operation at the same number did, and where it is now."""
    last = _last_call(traced.get(rank))
    if call is not None and call == last and call.state == "entered":
        return f"rank {rank} is in {call.name}"
    if call is not None and call == last and call.state == "failed":
        return f"rank {rank} failed in {call.name}"
    position = _position(rank, traced.get(rank), situations, group)
    return f"rank {rank} called {call.name} instead; {position}" if call is not None else position


def _position(rank: int, trace: RankTrace | None, situations: Mapping[int, RankSituation], group: str) -> str:
    """Where a rank is now: in which call, in which line of Python, or how it left the test body."""
    situation = situations.get(rank, RankSituation(False))
    last = _last_call(trace)
    in_group = "" if last is None or last.group == group else f" of group {last.group}"
    if last is not None and last.state == "entered":
        if situation.running or not situation.ended:
            return f"rank {rank} is in {last.name}{in_group}"
        return f"rank {rank} ended ({situation.ended}) in {last.name}{in_group}"
    if last is not None and last.state == "failed" and not situation.running:
        return f"rank {rank} failed in {last.name}{in_group}"
    if situation.running:
        if situation.location:
            return f"rank {rank} is not in a collective: it is in {situation.location}"
        return f"rank {rank} is not in a collective"
    return f"rank {rank} had left the test body ({situation.ended or 'ended'})"


def _position_is_python(trace: RankTrace | None) -> bool:
    last = _last_call(trace)
    return last is None or last.state == "completed"


def _last_call(trace: RankTrace | None) -> TracedCall | None:
    return trace.calls[-1] if trace is not None and trace.calls else None


def _call_at(trace: RankTrace, group: str, seq: int) -> TracedCall | None:
    for call in trace.calls:
        if call.group == group and call.seq == seq and call.op not in P2P_OPS:
            return call
    return None


def _table(traced: Mapping[int, RankTrace], disagreements: Mapping[str, int]) -> str:
    """Per group, a row per sequence number and a column per rank; then each rank's unfinished send/recv."""
    blocks = []
    for group, members in _groups(traced.values()):
        columns = [rank for rank in members if rank in traced]
        cells = {
            rank: {
                call.seq: _cell(call)
                for call in traced[rank].calls
                if call.group == group and call.op not in P2P_OPS
            }
            for rank in columns
        }
        seqs = sorted({seq for by_seq in cells.values() for seq in by_seq})
        if not seqs:
            continue
        for rank in columns:
            if traced[rank].dropped:
                # Before its oldest call still in the ring, a rank's calls are unknown, not missing.
                oldest = min(cells[rank], default=seqs[-1] + 1)
                cells[rank].update({seq: FORGOTTEN for seq in seqs if seq < oldest})
        first = disagreements.get(group, seqs[-1] - TABLE_ROWS + 1)
        start = max(0, next((i for i, seq in enumerate(seqs) if seq >= first - 2), 0))
        start = min(start, max(0, len(seqs) - TABLE_ROWS)) if group not in disagreements else start
        shown = seqs[start : start + TABLE_ROWS]
        header = ["#", *(f"rank {rank}" for rank in columns)]
        rows = [[str(seq), *(cells[rank].get(seq, "-") for rank in columns)] for seq in shown]
        more = []
        if start:
            more.append(f"({start} earlier not shown)")
        if start + TABLE_ROWS < len(seqs):
            more.append(f"({len(seqs) - start - TABLE_ROWS} later not shown)")
        forgotten = any(cells[rank].get(seq) == FORGOTTEN for rank in columns for seq in shown)
        legend = "* in it, ! failed, - not entered" + (", ? fell out of the rank's ring" if forgotten else "")
        title = f"collectives of group {group} per rank ({legend})"
        blocks.append("\n".join([title, *_aligned([header, *rows]), *more]))
    pending = [
        f"rank {rank}: in {call.name} of group {call.group} {call.signature}".rstrip()
        for rank, trace in sorted(traced.items())
        for call in trace.calls
        if call.op in P2P_OPS and call.state == "entered"
    ]
    if pending:
        blocks.append("\n".join(["send/recv not known to be complete", *pending]))
    return "\n\n".join(blocks)


def _cell(call: TracedCall) -> str:
    mark = {"entered": " *", "failed": " !"}.get(call.state, "")
    return f"{call.op} {call.signature}".rstrip() + mark


def _aligned(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


# faulthandler: '  File "/path/x.py", line 12 in test_hang'
_FRAME = re.compile(r'^\s+File "(.+)", line (\d+) in (\S+)', re.MULTILINE)
# rank_processes cuts each thread below the rank's entry frame and marks that frame: the test's thread has it.
_ENTRY_MARK = "(pytest's frames below it omitted)"
_LIBRARY_DIRS = tuple(
    {
        str(Path(path))
        for key in ("stdlib", "platstdlib", "purelib", "platlib")
        if (path := sysconfig.get_paths().get(key))
    }
)
_HARNESS_DIR = str(Path(__file__).resolve().parents[1])


def _is_library(path: str) -> bool:
    return path.startswith(_LIBRARY_DIRS) or path.startswith(_HARNESS_DIR) or path.startswith("<")


def _shown(path: str, roots: Iterable[str]) -> str:
    for root in roots:
        try:
            return str(Path(path).relative_to(root))
        except ValueError:
            continue
    return path
