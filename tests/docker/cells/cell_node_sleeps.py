"""Run inside node containers by tests/docker: a distributed test that waits, for a node killed mid-test."""

import time


def test_every_rank_waits(dist_env):
    time.sleep(3600)
