"""Ranks that disagree (desync_scenarios.py), on real gloo ranks: each report opens with the rank and call."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from plugin_runs import Run, run_pytest_in

from harness.pytest_plugin.desync.desync_verdict import describe_ranks

pytestmark = pytest.mark.e2e

SCENARIOS = Path(__file__).with_name("desync_scenarios.py")
SCENARIO_MODULE = "test_desync_scenarios.py"


def run_scenarios(directory: Path, *args: str, timeout: float = 240) -> Run:
    """Run the scenarios in a separate pytest, without py-spy (its native dumps only slow the reports)."""
    (directory / SCENARIO_MODULE).write_text(SCENARIOS.read_text())
    path = os.environ.get("PATH", "").split(os.pathsep)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", os.pathsep.join(d for d in path if not shutil.which("py-spy", path=d)))
        return run_pytest_in(directory, *args, timeout=timeout)


def expected_headlines(world_size: int, checked: bool = False) -> dict[str, str]:
    """The first line of each scenario's report: the last rank goes astray, the others are the reference."""
    odd, others = world_size - 1, describe_ranks(range(world_size - 1))
    one = world_size == 2
    source = SCENARIOS.read_text().splitlines()
    sleep_line = next(i for i, line in enumerate(source, 1) if "time.sleep(600)" in line)
    if checked:  # every rank raised at the check: they entered the call, and the odd one failed in its own
        waiting, odd_is_in = "entered it", f"rank {odd} failed in"
    else:
        waiting, odd_is_in = ("waits in it" if one else "wait in it"), f"rank {odd} is in"
    return {
        "test_skips_a_collective": f"desync: rank {odd} never entered all_reduce #3 of group WORLD "
        f"({others} {waiting}); {odd_is_in} all_gather_single #3",
        "test_reorders_two_collectives": f"desync: rank {odd} never entered all_reduce #2 of group WORLD "
        f"({others} {waiting}); {odd_is_in} all_gather_single #2",
        "test_passes_another_shape": f"mismatch: all_reduce #2: rank {odd} passed float32[8, 4], "
        f"{others} passed float32[8, 8]",
        "test_passes_another_dtype": f"mismatch: all_reduce #2: rank {odd} passed float64[8, 8], "
        f"{others} passed float32[8, 8]",
        "test_hangs_outside_any_collective": f"rank {odd} is not in a collective: it is in "
        f"{SCENARIO_MODULE}:{sleep_line} test_hangs_outside_any_collective "
        f"({others} {'waits' if one else 'wait'} in all_reduce #2 of group WORLD)",
    }


TIMED_OUT = re.compile(r"timed out after \d+ s \(--dist-timeout\): ")


def verdict_line(message: str) -> str:
    """The first line without the timeout's own words, which come first when the test ran out of time."""
    return TIMED_OUT.sub("", message.splitlines()[0], count=1)


@pytest.mark.parametrize(("world_size", "reuse"), [(2, "on"), (4, "off")])
def test_each_report_names_the_rank_and_the_call(tmp_path, world_size, reuse):
    run = run_scenarios(
        tmp_path, f"--dist-world-size={world_size}", f"--dist-reuse={reuse}", "--dist-timeout=3"
    )
    for name, headline in expected_headlines(world_size).items():
        assert run.outcomes.get(name) == "failed", (name, run.output)
        message = run.messages[name]
        assert verdict_line(message) == headline, message
        # Then the clauses, the table of every rank's calls, and the stacks after it.
        assert message.index("collectives of group WORLD per rank") < message.index("---- rank "), message
    # The table: a row per call, a column per rank; the skipped call's row shows each rank's call in flight.
    table = run.messages["test_skips_a_collective"].split("\n\n")[1].splitlines()
    assert table[0] == "collectives of group WORLD per rank (* in it, ! failed, - not entered)", table
    assert table[1].split() == ["#", *(word for rank in range(world_size) for word in ("rank", str(rank)))]
    in_flight = ["all_reduce", "float32[8,", "8]", "*"] * (world_size - 1)
    assert table[4].split() == ["3", *in_flight, "all_gather_single", "float32[8,", "8]", "*"], table


def test_checked_collectives_fail_at_once_with_the_verdict(tmp_path):
    # A timeout far above what the checks need: a report that says the timeout ran out has waited for it.
    run = run_scenarios(
        tmp_path, "--dist-world-size=2", "--dist-timeout=60", "--dist-check-collectives", "-k", "not hangs"
    )
    assert "collectives checked across ranks" in run.output
    headlines = expected_headlines(2, checked=True)
    del headlines["test_hangs_outside_any_collective"]
    for name, headline in headlines.items():
        message = run.messages[name]
        assert message.splitlines()[0] == headline, message
        assert "Detected mismatch between collectives on ranks" in message
        assert "--dist-timeout" not in message, "the check failed the test before the timeout"


def test_tracing_off_leaves_the_report_as_it_was(tmp_path):
    run = run_scenarios(
        tmp_path, "--dist-world-size=2", "--dist-timeout=3", "--dist-trace-collectives=off", "-k", "shape"
    )
    message = run.messages["test_passes_another_shape"]
    assert "mismatch" not in message and "collectives of group" not in message, message
    assert verdict_line(message).startswith("rank "), message  # the clauses come first, as before
