"""A suite of flaky distributed tests for the plugin's retry and repeat tests (run in a separate pytest).

Each rank counts its attempts in a file of the test's tmp_path (set up once, in the pytest process, and
shared by every attempt's fresh ranks), so every rank of an attempt knows which attempt it is.
"""

import random
import time

# One failure in every three attempts, at a seeded place in each block of three.
_RNG = random.Random(36)
ONE_IN_THREE = "".join(
    "".join("F" if j == k else "P" for j in range(3)) for k in (_RNG.randrange(3) for _ in range(20))
)


def attempt(tmp_path, rank):
    """This rank's attempt number (1, 2, ...) at this test."""
    counter = tmp_path / f"attempts.rank{rank}"
    number = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(number))
    return number


def test_fails_first_attempt_only(dist_env, tmp_path):
    if attempt(tmp_path, dist_env.rank) == 1 and dist_env.rank == 1:
        raise AssertionError("first attempt fails on rank 1")


def test_fails_one_in_three(dist_env, tmp_path):
    number = attempt(tmp_path, dist_env.rank)
    if ONE_IN_THREE[number - 1] == "F" and dist_env.rank == 0:
        raise AssertionError(f"seeded failure at attempt {number}")


def test_hangs_once(dist_env, tmp_path):
    if attempt(tmp_path, dist_env.rank) == 1 and dist_env.rank == 0:
        time.sleep(600)


def test_always_fails(dist_env, tmp_path):
    number = attempt(tmp_path, dist_env.rank)
    raise AssertionError(f"fails at attempt {number}")


def test_passes(dist_env, tmp_path):
    attempt(tmp_path, dist_env.rank)
