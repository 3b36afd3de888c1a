"""`quarantine:` in matrix.yaml: which tests an entry names, the loader's errors, a cell's verdict without its
quarantined failures, the run's release candidates, and one real `harness run` of a small suite."""

from __future__ import annotations

import io
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from cli_runs import harness_env, run_harness
from rich.console import Console

from harness.common.errors import ConfigurationError
from harness.common.progress_events import Reported
from harness.config.matrix import load_matrix
from harness.config.model import Cell, QuarantineEntry
from harness.config.quarantine import matches
from harness.planning.plan import PlannedCell
from harness.presentation.progress import PlainProgress
from harness.results.cell_dir import collect_cell_result
from harness.results.cell_result import CellResult, QuarantineRecord
from harness.results.junit import write_merged_junit
from harness.results.quarantine import quarantine_outcome

FLAKY_SUITE = Path(__file__).resolve().parents[1] / "plugin" / "suites" / "flaky" / "test_flaky.py"
ISSUE = "https://example.org/issues/36"


@pytest.mark.parametrize(
    ("pattern", "node_id", "named"),
    [
        ("tests/t.py::test_a", "tests/t.py::test_a", True),
        ("tests/t.py::test_a", "tests/t.py::test_ab", False),
        ("tests/t.py::test_a", "tests/t.py::test_a[2-gloo]", True),
        ("tests/t.py::test_a[2-gloo]", "tests/t.py::test_a[2-gloo]", True),
        # Brackets are literal, not a character class.
        ("tests/t.py::test_a[2-gloo]", "tests/t.py::test_a[g]", False),
        ("tests/t.py", "tests/t.py::TestX::test_a", True),
        ("tests/t.py::TestX", "tests/t.py::TestX::test_a", True),
        ("tests/t.py", "tests/t.pyx::test_a", False),
        ("*::test_all_reduce*", "tests/t.py::test_all_reduce_sum[4]", True),
        ("*::test_all_reduce*", "tests/t.py::test_broadcast", False),
    ],
)
def test_a_pattern_names_node_ids_parametrizations_and_files(pattern, node_id, named):
    assert matches(pattern, node_id) is named


def _matrix(tmp_path: Path, quarantine: str) -> Path:
    path = tmp_path / "matrix.yaml"
    path.write_text(f"version: 1\ndevices:\n  cpu: {{world_sizes: [2]}}\nquarantine:\n{quarantine}")
    return path


def test_every_cell_carries_the_entries_with_where_they_were_declared(tmp_path):
    path = _matrix(tmp_path, f"  - {{test: 'tests/t.py::test_a', reason: ' hangs ', issue: '{ISSUE}'}}\n")
    [cell] = load_matrix(path).cells
    assert cell.quarantine == (QuarantineEntry("tests/t.py::test_a", "hangs", ISSUE, "matrix.yaml:5"),)
    assert Cell.from_json(json.loads(json.dumps(cell.to_json()))) == cell


def test_bad_entries_are_named_by_file_line_and_key(tmp_path):
    path = _matrix(
        tmp_path,
        f"  - {{test: '*', reason: r, issue: '{ISSUE}'}}\n"
        f"  - {{test: 'tests/t.py::a b', reason: r, issue: '{ISSUE}'}}\n"
        "  - {test: tests/t.py::c, reason: r, issue: '#36'}\n"
        f"  - {{test: tests/t.py::d, issue: '{ISSUE}'}}\n"
        f"  - {{test: tests/t.py::e, reason: '  ', issue: '{ISSUE}'}}\n"
        f"  - {{test: tests/t.py::e, reason: r, issue: '{ISSUE}'}}\n",
    )
    with pytest.raises(ConfigurationError) as caught:
        load_matrix(path)
    text = str(caught.value)
    assert "matrix.yaml:8: quarantine[3]: missing required key: reason" in text, text
    # The schema problem stops the loader before its own checks: fix it, and they come.
    path.write_text(
        path.read_text().replace("{test: tests/t.py::d, issue", "{test: tests/t.py::d, reason: r, issue")
    )
    with pytest.raises(ConfigurationError) as caught:
        load_matrix(path)
    lines = str(caught.value).splitlines()
    assert any(
        line.startswith("  ") and "matrix.yaml:5: quarantine[0].test:" in line and "every test" in line
        for line in lines
    ), lines
    assert any("matrix.yaml:6: quarantine[1].test:" in line and "white space" in line for line in lines), (
        lines
    )
    assert any("matrix.yaml:7: quarantine[2].issue: '#36' is not a link" in line for line in lines), lines
    assert any("matrix.yaml:9: quarantine[4].reason: is blank" in line for line in lines), lines
    assert any(
        "matrix.yaml:10: quarantine[5].test:" in line and "twice (first at line 9)" in line for line in lines
    ), lines


def _junit(*cases: str) -> str:
    failures = sum("<failure" in case for case in cases)
    return (
        f'<testsuites><testsuite name="pytest" tests="{len(cases)}" failures="{failures}" errors="0" '
        f'skipped="0">{"".join(cases)}</testsuite></testsuites>'
    )


PASSED = '<testcase classname="tests.test_q" name="{}" />'
FAILED = (
    '<testcase classname="tests.test_q" name="{}"><failure message="rank 1 of 2 failed: boom" /></testcase>'
)
FLAKY = (
    '<testcase classname="tests.test_q" name="{}"><flakyFailure message="rank 0 of 2 failed: once">'
    "<stackTrace>once</stackTrace></flakyFailure></testcase>"
)


def _cell_result(tmp_path: Path, quarantined: tuple[str, ...], *cases: str, exit_code: int = 1):
    entries = tuple(QuarantineEntry(f"tests/test_q.py::{name}", "flaky", ISSUE) for name in quarantined)
    cell = Cell("cpu-gloo-ws2", "cpu", "gloo", 2, ("tests",), quarantine=entries)
    cell_dir = tmp_path / cell.id
    cell_dir.mkdir()
    (cell_dir / "junit.xml").write_text(_junit(*cases))
    return collect_cell_result(cell, cell_dir, exit_code, 1.0, "local").to_json()


def test_a_cell_whose_only_failures_are_quarantined_passes_and_counts_them(tmp_path):
    cell = _cell_result(tmp_path, ("test_hangs",), FAILED.format("test_hangs"), PASSED.format("test_ok"))
    assert cell["status"] == "passed", cell["reason"]
    assert cell["counts"] | {} == {**cell["counts"], "passed": 1, "failed": 0, "quarantined": 1}
    [record] = cell["quarantine"]
    assert record["ran"] == 1 and record["failed"] == 1
    assert record["failures"] == [
        {"test": "tests/test_q.py::test_hangs", "summary": "rank 1 of 2 failed: boom"}
    ]


def test_a_failure_that_is_not_quarantined_still_fails_the_cell(tmp_path):
    cell = _cell_result(tmp_path, ("test_hangs",), FAILED.format("test_hangs"), FAILED.format("test_other"))
    assert cell["status"] == "failed"
    assert cell["counts"]["failed"] == 1 and cell["counts"]["quarantined"] == 1


def test_without_quarantine_the_same_failure_fails_the_cell(tmp_path):
    cell = _cell_result(tmp_path, (), FAILED.format("test_hangs"), PASSED.format("test_ok"))
    assert cell["status"] == "failed" and cell["quarantine"] == []


def test_a_quarantined_failure_is_a_skip_in_the_merged_junit_with_its_text_kept(tmp_path):
    cell = CellResult.from_json(
        _cell_result(tmp_path, ("test_hangs",), FAILED.format("test_hangs"), FAILED.format("test_other"))
    )
    found = write_merged_junit([cell], Path("/"), tmp_path / "merged.xml")

    [suite] = ET.parse(tmp_path / "merged.xml").getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("2", "1", "1")
    cases = {case.get("name"): case for case in suite}
    quarantined = cases["test_hangs"]
    assert quarantined.find("failure") is None
    # As JUnit viewers show an xfail (pytest, Surefire): skipped, with why and where it is tracked.
    assert quarantined.find("skipped").get("message") == f"quarantined: flaky ({ISSUE})"
    assert "rank 1 of 2 failed: boom" in quarantined.findtext("system-out")
    assert cases["test_other"].find("failure") is not None
    # The cell's failures are the real one only: the quarantined one is reported apart.
    assert [failure.test for failure in found[cell.id].failures] == ["tests/test_q.py::test_other"]


def test_the_live_line_of_a_quarantined_failure_says_quarantined():
    entry = QuarantineEntry("tests/test_q.py::test_hangs", "flaky", ISSUE)
    cell = Cell("cpu-gloo-ws2", "cpu", "gloo", 2, ("tests",), quarantine=(entry,))
    console = Console(file=io.StringIO(), width=200)
    view = PlainProgress(console)
    view.cell_started(PlannedCell(cell, "local", "on the host"))
    for name in ("test_hangs[2-gloo]", "test_other"):
        event = Reported(nodeid=f"tests/test_q.py::{name}", when="call", outcome="failed")
        view.event(cell.id, event)

    lines = console.file.getvalue().splitlines()
    assert any("tests/test_q.py::test_hangs[2-gloo] QUARANTINED" in line for line in lines), lines
    assert any("tests/test_q.py::test_other FAILED" in line for line in lines), lines


def _record(test: str, ran: int, failed: int) -> QuarantineRecord:
    return QuarantineRecord(test, "flaky", ISSUE, ran=ran, failed=failed)


def _ran(cell_id: str, status: str, *records: QuarantineRecord) -> CellResult:
    return CellResult(cell_id, "cpu", 2, status, quarantine=list(records))


def test_release_candidates_passed_every_attempt_in_every_cell(tmp_path):
    flaky_here = _cell_result(
        tmp_path, ("test_flaky", "test_ok"), FLAKY.format("test_flaky"), PASSED.format("test_ok"), exit_code=0
    )
    assert flaky_here["status"] == "passed" and flaky_here["counts"]["quarantined"] == 0
    other = _ran(
        "cpu-gloo-ws4",
        "passed",
        _record("tests/test_q.py::test_ok", 1, 0),
        _record("tests/never_ran.py", 0, 0),
    )
    failed_elsewhere = _ran("cpu-gloo-ws8", "failed", _record("a.py::b", 1, 1))
    errored = _ran("cpu-gloo-ws3", "error", _record("c.py::d", 1, 0))
    ok_here = _ran("cpu-gloo-ws6", "passed", _record("a.py::b", 2, 0))
    outcome = quarantine_outcome(
        [CellResult.from_json(flaky_here), other, failed_elsewhere, errored, ok_here]
    )
    # A test that passed only on a retry is still flaky; one that failed in any cell, or whose cell did not
    # run to a verdict, stays; an entry that named no test that ran says nothing.
    assert [(e.test, e.ran) for e in outcome.release_candidates] == [("tests/test_q.py::test_ok", 2)]
    assert [line.split(":")[0] for line in outcome.release_lines()] == ["RELEASE? tests/test_q.py"]


MATRIX = """\
version: 1
defaults: {tests: [tests/test_flaky.py], timeout: 300, test_timeout: 30, keyword: always_fails or passes}
devices:
  cpu: {world_sizes: [2]}
quarantine:
  - {test: tests/test_flaky.py::test_always_fails, reason: "fails every attempt \\x1b[31m", issue: "ISSUE/1"}
  - {test: "tests/test_flaky.py::test_pass*", reason: was flaky, issue: "ISSUE/2"}
""".replace("ISSUE", ISSUE)


def test_a_real_run_passes_a_cell_with_a_quarantined_failure_and_names_a_release_candidate(tmp_path):
    (tmp_path / "tests").mkdir()
    shutil.copy(FLAKY_SUITE, tmp_path / "tests" / "test_flaky.py")
    (tmp_path / "matrix.yaml").write_text(MATRIX)
    done = run_harness("run", "matrix.yaml", "--executor", "local", "--out", "out", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "QUARANTINED cpu-gloo-ws2 tests/test_flaky.py::test_always_fails: " in done.stdout
    assert "RELEASE? tests/test_flaky.py::test_pass*: quarantined" in done.stdout
    # The matrix's words reach the terminal through untrusted_text: no escape sequence.
    assert "\x1b[31m" not in done.stdout and "fails every attempt" in done.stdout
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    [cell] = summary["cells"]
    assert cell["status"] == "passed" and cell["counts"]["quarantined"] == 1 and cell["counts"]["passed"] == 1
    assert [f["test"] for f in summary["quarantine"]["failures"]] == [
        "tests/test_flaky.py::test_always_fails"
    ]
    assert [e["test"] for e in summary["quarantine"]["release_candidates"]] == [
        "tests/test_flaky.py::test_pass*"
    ]
    markdown = (tmp_path / "out" / "summary.md").read_text()
    assert "(1 quarantined failed)" in markdown and "## Quarantined tests to release" in markdown
    assert "tests/test_flaky.py::test_always_fails QUARANTINED" in done.stdout
    assert "test_always_fails FAILED" not in done.stdout
    merged = ET.parse(tmp_path / "out" / "junit.xml").getroot()
    [case] = [case for case in merged.iter("testcase") if case.get("name") == "test_always_fails"]
    assert case.find("failure") is None and case.find("skipped").get("message").startswith("quarantined: ")
    report = run_harness("report", "out", cwd=tmp_path, env=harness_env(GITHUB_ACTIONS="true"))
    assert report.returncode == 0, report.stdout + report.stderr
    lines = report.stdout.splitlines()
    assert [line.split(" ")[0] for line in lines if line.startswith("::")] == ["::warning", "::notice"], lines
    assert (
        "::warning title=quarantined%3A cpu-gloo-ws2%3A tests/test_flaky.py%3A%3Atest_always_fails"
        in report.stdout
    )
