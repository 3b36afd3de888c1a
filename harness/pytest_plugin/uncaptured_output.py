"""A `-s` run's output under pytest-forked goes where plain pytest puts it: pytest's own stdout and stderr.

pytest-forked points its child's fds 1 and 2 (and `sys.stdout`/`sys.stderr`, as file objects of their
own) at temporary files and reads them back only when the child crashes. With capture on, pytest's
capture inside the child holds the output and puts it on the report, so nothing is lost; with capture off
(`-s`) nothing else holds it, and every print of the test and of its ranks (forked from that child,
inheriting its fds) vanished on a clean exit. So with capture off the pytest process keeps copies of its
fds 1 and 2, and a forked child writes through them again, from Python and from native code alike.
"""

from __future__ import annotations

import os
import sys

import pytest

from harness.pytest_plugin.lifetime import flush_stdio


class UncapturedOutput:
    """Registered only when capture is off; acts only in a forked child of the pytest process."""

    def __init__(self) -> None:
        self._pytest_pid = os.getpid()
        self._stdout = os.dup(1)
        self._stderr = os.dup(2)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if os.getpid() == self._pytest_pid:
            return
        flush_stdio()
        os.dup2(self._stdout, 1)
        os.dup2(self._stderr, 2)
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        for fd in (self._stdout, self._stderr):
            try:
                os.close(fd)
            except OSError:
                pass


def keep_uncaptured_output(config: pytest.Config) -> None:
    if config.getoption("capture", default="fd") == "no":
        config.pluginmanager.register(UncapturedOutput(), "comm_harness_uncaptured_output")
