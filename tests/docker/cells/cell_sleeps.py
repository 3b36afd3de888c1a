"""Run inside a container by tests/docker: a test that never ends on its own, for timeouts and Ctrl-C."""

import time


def test_sleeps_far_past_any_timeout():
    time.sleep(3600)
