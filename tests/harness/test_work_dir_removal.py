"""A cell's work/ is always removed, whatever a test left in it, and the next run into the directory works.

Real trees on the real filesystem; the modes a test takes away are only felt by a harness that is not
root, so that part runs in a process of its own as another uid when these tests run as root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.config.model import Cell
from harness.results.cell_dir import prepare_cell_dir
from harness.results.files import WORK_DIR, harvest_work_dir, remove_tree

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPTH = 3000  # deeper than the recursion limit, longer than PATH_MAX as one path
UNPRIVILEGED_UID = 4242

# Run as the unprivileged owner of ROOT: a tree whose modes lock its owner out, and a link to a directory
# outside it; then remove_tree.
LOCKED_TREE = """
import os, sys
from pathlib import Path
from harness.results.files import remove_tree

root = Path(sys.argv[1])
tree, outside = root / "tree", root / "outside"
outside.mkdir(); (outside / "kept").write_text("x"); outside.chmod(0o555)
tree.mkdir()
(tree / "to-outside").symlink_to(outside)
for name, mode in (("no-access", 0o000), ("no-search", 0o600), ("no-read", 0o300), ("read-only", 0o555)):
    (tree / name).mkdir(); (tree / name / "file").write_text("x"); (tree / name / "file").chmod(0o444)
    (tree / name / "sub").mkdir(); (tree / name / "sub").chmod(mode); (tree / name).chmod(mode)
fd = os.open(tree, os.O_RDONLY)
for _ in range({depth}):
    os.mkdir("d", dir_fd=fd); inner = os.open("d", os.O_RDONLY, dir_fd=fd); os.close(fd); fd = inner
os.close(fd)
tree.chmod(0o000)
remove_tree(tree)
print("tree left:", tree.exists(), "outside mode:", oct(outside.stat().st_mode & 0o777),
      "outside kept:", (outside / "kept").read_text())
"""


def make_chain(top: Path, depth: int) -> None:
    """`depth` nested directories under `top`, the innermost holding a file; grown from the inside out
    (each step wraps the chain in a new directory), since the whole path is too long to name."""
    (top / "d").mkdir()
    (top / "d" / "bottom.txt").write_text("x")
    for _ in range(depth - 1):
        (top / "wrap").mkdir()
        (top / "d").rename(top / "wrap" / "d")
        (top / "wrap").rename(top / "d")


def usable_by_others(path: Path) -> bool:
    """Whether any user may run `path`: it and every directory above it are open to others."""
    return all(os.stat(part).st_mode & 0o001 for part in [path, *path.parents])


@pytest.fixture
def unprivileged_root() -> Iterator[tuple[Path, dict]]:
    """A directory owned by the user the removal runs as, and subprocess arguments that run as that user."""
    root = Path(tempfile.mkdtemp(prefix="work-removal-"))
    as_user: dict = {"executable": sys.executable}
    if os.getuid() == 0:
        candidates = (Path(sys.executable), Path("/usr/bin/python3"))
        python = next((path for path in candidates if usable_by_others(path)), None)
        if python is None:
            shutil.rmtree(root)
            pytest.skip(f"no Python another user may run ({sys.executable} is closed to others)")
        as_user["executable"] = str(python)
        # Where every user may pass (mkdtemp makes 0700), and owned by a uid that holds no privilege.
        root.chmod(0o755)
        os.chown(root, UNPRIVILEGED_UID, UNPRIVILEGED_UID)
        as_user.update(user=UNPRIVILEGED_UID, group=UNPRIVILEGED_UID, extra_groups=[])
    try:
        yield root, as_user
    finally:
        remove_tree(root)


def test_a_chain_deeper_than_the_recursion_limit_is_removed_and_the_directory_reused(tmp_path: Path) -> None:
    cell = Cell(id="deep", device="cpu", backend="gloo", world_size=1, tests=("t.py",))
    work = prepare_cell_dir(cell, tmp_path / cell.id)
    make_chain(work, DEPTH)
    (work / "junit.xml").write_text('<testsuite tests="1"><testcase name="t"/></testsuite>')
    try:
        assert harvest_work_dir(tmp_path / cell.id) == []

        assert not work.exists()
        assert (tmp_path / cell.id / "junit.xml").is_file()
        make_chain(prepare_cell_dir(cell, tmp_path / cell.id), DEPTH)
        remove_tree(tmp_path / cell.id)  # as the next run does, before writing its own files
        assert not (tmp_path / cell.id).exists()
    finally:
        # Left behind, the chain would crash pytest's own clean-up of old temporary directories (it recurses).
        remove_tree(tmp_path / cell.id)


def test_modes_a_test_took_away_do_not_stop_removal_and_links_are_not_followed(
    unprivileged_root: tuple[Path, dict],
) -> None:
    root, as_user = unprivileged_root

    done = subprocess.run(
        ["python", "-c", LOCKED_TREE.format(depth=DEPTH), str(root)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        timeout=120,
        **as_user,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "tree left: False outside mode: 0o555 outside kept: x"


def test_a_link_as_the_tree_itself_is_removed_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "kept").write_text("x")
    (tmp_path / WORK_DIR).symlink_to(target)

    remove_tree(tmp_path / WORK_DIR)

    assert not (tmp_path / WORK_DIR).is_symlink() and (target / "kept").read_text() == "x"
