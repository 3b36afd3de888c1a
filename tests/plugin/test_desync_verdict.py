"""The verdict on synthetic traces: who went astray, in which call, in the words a reader needs."""

from __future__ import annotations

from harness.pytest_plugin.desync.desync_verdict import (
    RankSituation,
    RankTrace,
    TracedCall,
    analyse,
    innermost_test_frame,
)

WORLD4 = (0, 1, 2, 3)


def call(
    seq, op="all_reduce", state="completed", shape=(8, 8), dtype="float32", group="WORLD", members=WORLD4
):
    return TracedCall(group=group, members=members, seq=seq, op=op, state=state, dtype=dtype, shape=shape)


def trace(rank, *calls, dropped=0):
    return RankTrace(rank, tuple(calls), dropped=dropped)


def hung(location=None):
    return RankSituation(running=True, location=location)


def headline(traces, situations=None):
    findings = analyse(traces, situations or {t.rank: hung() for t in traces})
    assert findings is not None
    return findings.verdict[0] if findings.verdict else None


def test_a_skipped_collective_names_the_rank_and_where_it_is_instead():
    in_step = [trace(r, call(1), call(2), call(3, state="entered")) for r in (0, 2, 3)]
    astray = trace(1, call(1), call(2), call(3, op="all_gather_single", state="entered"))
    assert headline([*in_step, astray]) == (
        "desync: rank 1 never entered all_reduce #3 of group WORLD (ranks 0, 2, 3 wait in it); "
        "rank 1 is in all_gather_single #3"
    )


def test_without_a_majority_the_lowest_rank_is_the_reference():
    pair = (0, 1)
    zero = trace(0, call(1, members=pair), call(2, state="entered", members=pair))
    one = trace(1, call(1, members=pair), call(2, op="broadcast", state="entered", members=pair))
    assert headline([zero, one]) == (
        "desync: rank 1 never entered all_reduce #2 of group WORLD (rank 0 waits in it); "
        "rank 1 is in broadcast #2"
    )


def test_another_shape_or_dtype_is_a_mismatch_of_that_call():
    traces = [trace(r, call(1), call(2, state="entered")) for r in (0, 1, 3)]
    traces.insert(2, trace(2, call(1), call(2, state="entered", shape=(8, 4))))
    assert (
        headline(traces)
        == "mismatch: all_reduce #2: rank 2 passed float32[8, 4], ranks 0, 1, 3 passed float32[8, 8]"
    )
    traces[2] = trace(2, call(1), call(2, state="entered", dtype="bfloat16"))
    assert (
        headline(traces)
        == "mismatch: all_reduce #2: rank 2 passed bfloat16[8, 8], ranks 0, 1, 3 passed float32[8, 8]"
    )


def test_a_subgroup_is_named_and_compared_on_its_own_members():
    sub = {"group": "1", "members": (2, 3)}
    traces = [trace(r, call(1)) for r in (0, 1)]
    traces += [trace(2, call(1), call(1, **sub)), trace(3, call(1), call(1, shape=(2,), **sub))]
    assert (
        headline(traces)
        == "mismatch: all_reduce #1 of group 1: rank 3 passed float32[2], rank 2 passed float32[8, 8]"
    )


def test_a_rank_hung_in_python_is_located_by_its_stack():
    waiting = [trace(r, call(1), call(2, state="entered")) for r in (0, 1, 2)]
    situations = {0: hung(), 1: hung(), 2: hung(), 3: hung("test_x.py:12 test_hang")}
    assert headline([*waiting, trace(3, call(1))], situations) == (
        "rank 3 is not in a collective: it is in test_x.py:12 test_hang "
        "(ranks 0, 1, 2 wait in all_reduce #2 of group WORLD)"
    )


def test_a_rank_that_ended_before_the_call_is_not_called_astray():
    waiting = [trace(r, call(1), call(2, state="entered")) for r in (0, 1, 2)]
    situations = {r: hung() for r in (0, 1, 2)} | {3: RankSituation(False, ended="killed by SIGSEGV")}
    assert headline([*waiting, trace(3, call(1))], situations) == (
        "rank 3 ended (killed by SIGSEGV) before entering all_reduce #2 of group WORLD "
        "(ranks 0, 1, 2 wait in it)"
    )


def test_a_rank_elsewhere_while_another_ended_is_still_a_desync():
    waiting = [trace(r, call(1), call(2, state="entered")) for r in (0, 1)]
    situations = {0: hung(), 1: hung(), 2: RankSituation(False, ended="failed"), 3: hung()}
    elsewhere = trace(3, call(1), call(1, op="barrier", state="entered", group="1", members=(2, 3)))
    assert headline([*waiting, trace(2, call(1)), elsewhere], situations) == (
        "desync: ranks 2, 3 never entered all_reduce #2 of group WORLD (ranks 0, 1 wait in it); "
        "rank 2 had left the test body (failed); rank 3 is in barrier #1 of group 1"
    )


def test_shapes_that_may_differ_are_no_mismatch():
    traces = [trace(r, call(1, op="all_to_all_single", shape=(r + 1, 4))) for r in range(4)]
    findings = analyse(traces, {r: RankSituation(False, ended="failed") for r in range(4)})
    assert findings is not None and findings.verdict == ()


def test_calls_dropped_from_a_ring_are_not_missing():
    full = [trace(r, call(1), call(2), call(3)) for r in (0, 1, 2)]
    findings = analyse([*full, trace(3, call(3), dropped=2)], {r: hung() for r in range(4)})
    assert findings is not None and findings.verdict == ()
    # The table does not call them "not entered": rank 3 no longer knows.
    rows = findings.table.splitlines()
    assert rows[0].endswith("(* in it, ! failed, - not entered, ? fell out of the rank's ring)")
    assert [row.split()[-1] for row in rows[2:]] == ["?", "?", "8]"]


def test_a_verdict_on_a_ring_that_dropped_calls_says_how_much_of_the_rank_it_saw():
    in_step = [trace(r, call(1), call(2), call(3, state="entered")) for r in (0, 2, 3)]
    astray = trace(1, call(2), call(3, op="broadcast", state="entered"), dropped=40)
    findings = analyse([*in_step, astray], {r: hung() for r in range(4)})
    assert findings is not None
    assert findings.verdict == (
        "desync: rank 1 never entered all_reduce #3 of group WORLD (ranks 0, 2, 3 wait in it); "
        "rank 1 is in broadcast #3",
        "rank 1's trace holds its last 2 calls; 40 older ones fell out of the ring",
    )


def test_a_ring_that_kept_every_call_adds_nothing_to_the_verdict():
    in_step = [trace(r, call(1), call(2, state="entered")) for r in (0, 2, 3)]
    findings = analyse([*in_step, trace(1, call(1), call(2, op="barrier", state="entered"))], {})
    assert findings is not None and len(findings.verdict) == 1
    assert "fell out" not in findings.table


def test_no_trace_no_findings():
    assert analyse([None, None], {}) is None


def test_the_table_marks_calls_in_flight_and_missing():
    waiting = [trace(r, call(1), call(2, state="entered")) for r in (0, 1)]
    findings = analyse([*waiting, trace(2, call(1), call(2, state="failed", dtype="int64"))], {})
    rows = findings.table.splitlines()
    assert rows[0] == "collectives of group WORLD per rank (* in it, ! failed, - not entered)"
    assert rows[3].split() == [
        "2",
        *["all_reduce", "float32[8,", "8]", "*"] * 2,
        "all_reduce",
        "int64[8,",
        "8]",
        "!",
    ]


STACK = """\
Thread 0x00007f0000000001 (most recent call first):
  File "/usr/lib/python3.11/threading.py", line 331 in wait
  File "/usr/lib/python3.11/threading.py", line 629 in wait

Current thread 0x00007f0000000002 (most recent call first):
  File "/usr/lib/python3.11/threading.py", line 331 in wait
  File "/work/proj/tests/test_x.py", line 12 in helper
  File "/work/proj/tests/test_x.py", line 20 in test_hang
  File "/repo/harness/pytest_plugin/rank.py", line 170 in run  (pytest's frames below it omitted)
"""


def test_the_location_is_the_innermost_frame_of_test_code_in_the_test_s_thread():
    assert innermost_test_frame(STACK.replace("/usr/lib/python3.11", _stdlib()), ["/work/proj"]) == (
        "tests/test_x.py:12 helper"
    )
    assert innermost_test_frame("") is None


def _stdlib() -> str:
    import sysconfig

    return sysconfig.get_paths()["stdlib"]
