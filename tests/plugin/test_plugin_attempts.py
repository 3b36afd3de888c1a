"""Retries and repeats on real forked ranks: the suite in suites/flaky/ run by a separate pytest, in fork and
reuse mode, with and without pytest-forked; the verdicts, the terminal and the Surefire-style junit.xml."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from plugin_runs import run_pytest_in

SUITE = Path(__file__).resolve().parent / "suites" / "flaky"

MODES = {
    "reuse-under-forked": ["--dist-reuse", "on", "--forked"],
    "fork-under-forked": ["--dist-reuse", "off", "--forked"],
    "reuse": ["--dist-reuse", "on"],
    "fork": ["--dist-reuse", "off"],
}


def _suite_in(directory: Path) -> Path:
    shutil.copy(SUITE / "test_flaky.py", directory / "test_flaky.py")
    return directory


def _cases(directory: Path) -> dict[str, ET.Element]:
    return {case.get("name"): case for case in ET.parse(directory / "junit.xml").getroot().iter("testcase")}


@pytest.mark.parametrize(
    "mode", [pytest.param(m, marks=() if m == "reuse-under-forked" else pytest.mark.e2e) for m in MODES]
)
def test_retries_make_flaky_tests_pass_and_keep_every_failure(tmp_path, mode):
    directory = _suite_in(tmp_path)
    run = run_pytest_in(
        directory,
        "--dist-world-size=2",
        "--dist-timeout=4",
        "--dist-retries=2",
        *MODES[mode],
        "-k",
        "first_attempt or hangs_once or always_fails or passes",
        timeout=240,
    )
    # Only the test that never passes fails the run.
    assert run.ret == 1, run.output
    last = run.output.splitlines()[-1]
    assert "1 failed, 1 passed" in last and "2 flaky" in last, last
    assert run.outcomes["test_fails_first_attempt_only"] == "passed"
    assert run.outcomes["test_hangs_once"] == "passed"
    assert run.outcomes["test_always_fails"] == "failed"
    flaky = [line for line in run.output.splitlines() if line.startswith("FLAKY ")]
    assert len(flaky) == 2 and "test_fails_first_attempt_only: attempt 1 failed" in flaky[0], flaky
    cases = _cases(directory)
    first = cases["test_fails_first_attempt_only"]
    assert [child.tag for child in first if child.tag != "system-out"] == ["flakyFailure"]
    assert first.find("flakyFailure").get("message") == (
        "rank 1 of 2 failed: AssertionError: first attempt fails on rank 1"
    )
    hang = cases["test_hangs_once"].find("flakyFailure")
    assert "rank 0 of 2 timed out after 4 s (--dist-timeout)" in hang.find("stackTrace").text
    always = cases["test_always_fails"]
    assert "failed all 3 attempts" in always.find("failure").get("message")
    reruns = [r.get("message") for r in always.findall("rerunFailure")]
    assert [m.split("; ")[0] for m in reruns] == [
        "rank 0 of 2 failed: AssertionError: fails at attempt 1",
        "rank 0 of 2 failed: AssertionError: fails at attempt 2",
    ]
    assert not list(cases["test_passes"])


def test_without_retries_a_flaky_test_fails(tmp_path):
    run = run_pytest_in(
        _suite_in(tmp_path), "--dist-world-size=2", "--forked", "-k", "first_attempt", timeout=120
    )
    assert run.ret == 1 and run.outcomes == {"test_fails_first_attempt_only": "failed"}
    assert "flaky" not in run.output.splitlines()[-1]


@pytest.mark.parametrize(
    "mode", [pytest.param(m, marks=() if m == "fork-under-forked" else pytest.mark.e2e) for m in MODES]
)
def test_repeat_counts_the_failures_of_each_test(tmp_path, mode):
    directory = _suite_in(tmp_path)
    run = run_pytest_in(
        directory,
        "--dist-world-size=2",
        "--dist-repeat=6",
        *MODES[mode],
        "-k",
        "one_in_three or passes",
        timeout=240,
    )
    # One failure in every block of three attempts, by the suite's seeded pattern: 2 of 6; a test that
    # failed some repeats and passed others is flaky, and does not fail the run.
    assert run.ret == 0, run.output
    last = run.output.splitlines()[-1]
    assert "1 passed" in last and "1 flaky" in last, last
    lines = run.output.splitlines()
    assert any(line.startswith("2/6 failed") and line.endswith("test_fails_one_in_three") for line in lines)
    assert any(line.startswith("0/6 failed") and line.endswith("test_passes") for line in lines)
    assert sum("seeded failure at attempt" in line for line in lines if line.startswith("    ")) == 2
    assert len(_cases(directory)["test_fails_one_in_three"].findall("flakyFailure")) == 2
