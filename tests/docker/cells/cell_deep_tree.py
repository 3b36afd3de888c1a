"""Run inside a container by tests/docker: a test that leaves /results hard to remove.

A chain of TREE_DEPTH nested directories (deeper than Python's recursion limit, longer than PATH_MAX as
one path), a directory with every permission taken away holding a file, and a read-only directory of
read-only files.
"""

import os
from pathlib import Path

RESULTS = Path("/results")
TREE_DEPTH = 3000


def test_leaves_a_deep_and_locked_tree():
    fd = os.open(RESULTS, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(TREE_DEPTH):
        os.mkdir("d", dir_fd=fd)
        inner = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(fd)
    locked = RESULTS / "locked"
    locked.mkdir()
    (locked / "inside").write_text("x")
    locked.chmod(0o000)
    frozen = RESULTS / "frozen"
    frozen.mkdir()
    for name in ("a", "b"):
        (frozen / name).write_text("x")
        (frozen / name).chmod(0o444)
    frozen.chmod(0o555)
