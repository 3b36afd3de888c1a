"""A real `harness run` of a cell writing hostile text: nothing forged reaches the log or summary.md.

tests/harness/hostile/cell_hostile_text.py fails tests with workflow commands, escapes, Rich markup and
Markdown in their ids and messages, times out in a test whose id holds `[/]`, and ends its log with forged
command lines. The run's stdout (as in GitHub Actions), summary.md and `harness report`'s output must
show all of it as text; the run must still end with its exit code and a finished summary.json.
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_runs import REPO_ROOT, harness_env, run_harness
from untrusted_outputs import TERMINAL_CONTROLS, forged_commands, runner_commands

HARNESS = [sys.executable, "-m", "harness.commands.cli"]

pytestmark = pytest.mark.e2e

HOSTILE_CELL = REPO_ROOT / "tests" / "harness" / "hostile" / "cell_hostile_text.py"
MATRIX = """
version: 1
defaults: {tests: [tests/cell_hostile_text.py], timeout: 20, test_timeout: 120}
devices:
  cpu: {world_sizes: [1], required: true, image: {dockerfile: docker/cpu.Dockerfile}}
axes: {flavour: [fails, hangs, crashes]}
"""


@pytest.fixture
def hostile_project(project) -> Path:
    path = project(MATRIX)
    shutil.copy(HOSTILE_CELL, path.parent / "tests")
    return path.parent


def assert_nothing_acts(text: str, where: str) -> None:
    assert forged_commands(text) == [], f"{where}: a line the runner would execute"
    assert not TERMINAL_CONTROLS.search(text), f"{where}: a control character"


def test_hostile_ids_messages_and_logs_are_shown_never_obeyed(hostile_project: Path) -> None:
    env = harness_env(GITHUB_ACTIONS="true")
    args = ("run", "--executor", "local", "--out", "out")
    done = run_harness(*args, cwd=hostile_project, env=env, timeout=400)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    summary = json.loads((hostile_project / "out" / "summary.json").read_text())
    assert summary["exit_code"] == 1
    statuses = {cell["id"].rsplit("-", 1)[1]: cell["status"] for cell in summary["cells"]}
    assert statuses == {"fails": "failed", "hangs": "error", "crashes": "error"}
    assert_nothing_acts(done.stdout + done.stderr, "harness run")
    # Shown, escaped, where the reader looks: the ids, the timed-out test, the forged lines of the log.
    assert "test_hostile_id_fails[[bold red]styled[/]] FAILED" in done.stdout
    assert "test_hostile_id_fails[##\\[error]forged-legacy-id] FAILED" in done.stdout
    assert "cell_hostile_text.py::test_hangs_past_the_cell_timeout[[/]::error::hang] (5 of 6" in done.stdout
    assert "    \\::error file=forged.py,line=1::forged-by-line" in done.stdout
    assert "\\x1b[2J\\x1b[31mred" in done.stdout

    markdown = (hostile_project / "out" / "summary.md").read_text()
    assert_nothing_acts(markdown, "summary.md")
    assert "<img" not in markdown.replace("`<img", "")  # only inside code spans or fenced blocks

    report = run_harness("report", "out", "--markdown", "r.md", cwd=hostile_project, env=env)
    assert report.returncode == 1 and "Traceback" not in report.stderr, report.stdout + report.stderr
    assert_nothing_acts(report.stdout + report.stderr, "harness report")
    assert_nothing_acts((hostile_project / "r.md").read_text(), "report Markdown")
    # The harness's own annotations still work: one per failed test, one per errored cell.
    own = runner_commands(report.stdout)
    assert sorted(c.name for c in own) == ["error"] * 7 and all(c.at_line_start for c in own)
    assert sum(c.properties.get("file") == "tests/cell_hostile_text.py" for c in own) >= 5


def test_the_live_view_shows_a_timed_out_markup_id_and_finishes_the_summary(hostile_project: Path) -> None:
    # On a terminal (a pty, no CI): the live table. On main its `[/]` crashed it with a MarkupError.
    env = harness_env()
    env.pop("CI")
    primary, secondary = pty.openpty()
    started = time.monotonic()
    harness = subprocess.Popen(
        [*HARNESS, "run", "--executor", "local", "--cell", "*hangs", "--out", "o"],
        cwd=hostile_project,
        env=env,
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    output = bytearray()
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the pty closes when the harness exits
            break
        if not chunk:
            break
        output += chunk
        assert time.monotonic() - started < 300, "the run did not end"
    os.close(primary)
    assert harness.wait(timeout=60) == 1, output.decode(errors="replace")
    text = output.decode(errors="replace")
    assert "MarkupError" not in text and "Traceback" not in text
    assert "test_hangs_past_the_cell_timeout[[/]::error::hang]" in text
    summary = json.loads((hostile_project / "o" / "summary.json").read_text())
    assert summary["exit_code"] == 1 and summary["cells"][0]["status"] == "error"
