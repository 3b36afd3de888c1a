"""For the plugin's tests: run a real, separate pytest on small test files and read what happened."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import pytest

RECORD_ENV = "COMM_HARNESS_TEST_RECORD"
REPO_ROOT = str(Path(__file__).resolve().parents[2])


def plugin_args() -> list[str]:
    """`-p` for the plugin, unless it is installed: its entry point loads it then; -p would load it twice."""
    installed = any(ep.name == "comm_harness" for ep in importlib.metadata.entry_points(group="pytest11"))
    return [] if installed else ["-p", "harness.pytest_plugin.plugin"]


# The plugin's mode a module-scoped run covers in the default tier: reuse mode under pytest-forked, what a
# cpu cell runs (fork mode runs in most other plugin tests). The other combinations are in the e2e tier.
DEFAULT_TIER_MODES = frozenset({"reuse-under-forked"})


def mode_params(modes: dict) -> list:
    """`modes`' names as fixture params, those outside DEFAULT_TIER_MODES marked e2e."""
    return [
        pytest.param(mode, marks=() if mode in DEFAULT_TIER_MODES else pytest.mark.e2e)
        for mode in sorted(modes)
    ]


@dataclass
class Run:
    """The outcome of one pytest run: exit code, output, per-test outcomes, and the ranks' records."""

    ret: int
    output: str
    outcomes: dict[str, str] = field(default_factory=dict)  # test name -> passed / failed / skipped
    messages: dict[str, str] = field(default_factory=dict)  # test name -> failure text or skip reason
    # test name -> {rank: pid}, from the lines the test bodies append to the record file
    pids: dict[str, dict[int, int]] = field(default_factory=dict)


def pytest_command(*extra_paths: str) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of a separate pytest with the plugin, `extra_paths` importable."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([*extra_paths, REPO_ROOT, os.environ.get("PYTHONPATH", "")])
    )
    command = [sys.executable, "-m", "pytest", *plugin_args(), "-p", "no:cacheprovider"]
    return command, env


def run_pytest_in(directory: Path, *args: str, timeout: float = 90) -> Run:
    """Run a separate `python -m pytest` in `directory` with the plugin; the test bodies may append
    "name rank pid" lines to the file named by $COMM_HARNESS_TEST_RECORD."""
    record, junit = directory / "record.txt", directory / "junit.xml"
    record.write_text("")
    command, env = pytest_command(str(directory))
    env[RECORD_ENV] = str(record)
    done = subprocess.run(
        [*command, f"--junitxml={junit}", "-rA", *args],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    run = Run(done.returncode, done.stdout + done.stderr)
    if junit.exists():
        _read_junit(junit, run)
    for line in record.read_text().splitlines():
        name, rank, pid = line.split()
        run.pids.setdefault(name, {})[int(rank)] = int(pid)
    return run


def _read_junit(path: Path, run: Run) -> None:
    for case in ET.parse(path).getroot().iter("testcase"):
        name = case.get("name", "")
        run.outcomes[name] = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                run.outcomes[name] = "failed"
                run.messages[name] = child.text or child.get("message") or ""
            elif child.tag == "skipped":
                run.outcomes[name] = "skipped"
                run.messages[name] = child.get("message") or ""
