"""`retries:` in matrix.yaml and `harness run --retries/--repeat/--strict`: a flaky test on real ranks,
through a real cell run, in summary.json/md, the merged junit.xml, `harness report` and GitHub annotations."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

from cli_runs import harness_env, run_harness

FLAKY_SUITE = Path(__file__).resolve().parents[1] / "plugin" / "suites" / "flaky" / "test_flaky.py"

MATRIX = """\
version: 1
defaults: {tests: [tests/test_flaky.py], timeout: 300, test_timeout: 30, keyword: first_attempt or passes}
devices:
  cpu: {world_sizes: [2], retries: 1}
"""


def _project(tmp_path: Path) -> Path:
    (tmp_path / "tests").mkdir()
    shutil.copy(FLAKY_SUITE, tmp_path / "tests" / "test_flaky.py")
    (tmp_path / "matrix.yaml").write_text(MATRIX)
    return tmp_path


def test_a_flaky_test_passes_the_cell_and_is_reported_everywhere(tmp_path):
    project = _project(tmp_path)
    done = run_harness("run", "matrix.yaml", "--executor", "local", "--out", "out", cwd=project)
    assert done.returncode == 0, done.stdout + done.stderr
    flaky_line = "FLAKY cpu-gloo-ws2 tests/test_flaky.py::test_fails_first_attempt_only: passed after 1"
    assert flaky_line in done.stdout
    summary = json.loads((project / "out" / "summary.json").read_text())
    [cell] = summary["cells"]
    assert cell["status"] == "passed" and cell["counts"]["flaky"] == 1 and cell["counts"]["passed"] == 2
    markdown = (project / "out" / "summary.md").read_text()
    assert "(1 flaky)" in markdown and "## Flaky tests" in markdown
    merged = ET.parse(project / "out" / "junit.xml").getroot()
    [flaky] = [case for case in merged.iter("testcase") if case.find("flakyFailure") is not None]
    assert flaky.get("name") == "test_fails_first_attempt_only" and flaky.find("failure") is None
    assert "rank 1 of 2 failed" in flaky.find("flakyFailure").get("message")
    # The GitHub view: a warning, not an error.
    report = run_harness("report", "out", cwd=project, env=harness_env(GITHUB_ACTIONS="true"))
    assert report.returncode == 0, report.stdout + report.stderr
    warnings = [line for line in report.stdout.splitlines() if line.startswith("::warning")]
    assert len(warnings) == 1 and "flaky" in warnings[0], report.stdout
    assert not [line for line in report.stdout.splitlines() if line.startswith("::error")]


def test_strict_fails_a_run_with_a_flaky_test_and_no_retries_fails_the_cell(tmp_path):
    project = _project(tmp_path)
    run = ("run", "matrix.yaml", "--executor", "local")
    strict = run_harness(*run, "--out", "strict", "--strict", cwd=project)
    assert strict.returncode == 1, strict.stdout + strict.stderr
    plain = run_harness(*run, "--out", "plain", "--retries", "0", cwd=project)
    assert plain.returncode == 1, plain.stdout + plain.stderr
    [cell] = json.loads((project / "plain" / "summary.json").read_text())["cells"]
    assert cell["status"] == "failed" and cell["counts"]["flaky"] == 0

