"""What a cell writes cannot make the harness read or write elsewhere, or read without bound."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.config.model import Cell
from harness.results.bounded_log import BoundedLog
from harness.results.cell_dir import collect_cell_result, prepare_cell_dir
from harness.results.files import UnsafeResultFile, harvest_work_dir, read_regular

JUNIT = (
    '<?xml version="1.0"?><testsuites><testsuite name="s" tests="2" failures="0" errors="0" skipped="0">'
    '<testcase classname="t" name="a"/><testcase classname="t" name="b"/></testsuite></testsuites>'
)


def make_cell() -> Cell:
    return Cell(id="cpu-gloo-ws2", device="cpu", backend="gloo", world_size=2, tests=("tests",))


@pytest.fixture
def host_file(tmp_path: Path) -> Path:
    """A file outside every results directory, standing for /etc/shadow or a CI secret."""
    secret = tmp_path / "host" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("host secret\n")
    return secret


def test_a_link_is_never_read_through(tmp_path: Path, host_file: Path) -> None:
    link = tmp_path / "junit.xml"
    link.symlink_to(host_file)
    with pytest.raises(UnsafeResultFile, match="junit.xml is a symbolic link"):
        read_regular(link)


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "junit.xml"
    os.mkfifo(fifo)
    with pytest.raises(UnsafeResultFile, match="not a regular file"):
        read_regular(fifo)


def test_reads_are_bounded_and_tail_mode_keeps_the_end(tmp_path: Path) -> None:
    big = tmp_path / "progress.jsonl"
    big.write_bytes(b"x" * 1000 + b"END")
    with pytest.raises(UnsafeResultFile, match="over the 100-byte limit"):
        read_regular(big, 100)
    assert read_regular(big, 100, tail=True).endswith(b"END")
    assert len(read_regular(big, 100, tail=True)) == 100


def test_planted_links_in_a_cell_directory_are_removed_not_followed(tmp_path: Path, host_file: Path) -> None:
    cell_dir = tmp_path / "out" / "cpu-gloo-ws2"
    cell_dir.mkdir(parents=True)
    for name in ("cell.json", "log.txt", "result.json"):
        (cell_dir / name).symlink_to(host_file)
    (cell_dir / "work").mkdir()
    (cell_dir / "work" / "junit.xml").symlink_to(host_file)

    work = prepare_cell_dir(make_cell(), cell_dir)

    assert host_file.read_text() == "host secret\n"
    assert not (cell_dir / "log.txt").exists()
    assert not (cell_dir / "cell.json").is_symlink() and (work / "cell.json").is_file()
    assert sorted(os.listdir(work)) == ["cell.json"]


def test_a_planted_junit_link_errors_the_cell_naming_the_file(tmp_path: Path, host_file: Path) -> None:
    cell_dir = tmp_path / "cpu-gloo-ws2"
    work = prepare_cell_dir(make_cell(), cell_dir)
    (work / "junit.xml").symlink_to(host_file)
    (work / "fingerprint.json").write_text('{"torch": "2.13.0"}')

    refused = harvest_work_dir(cell_dir)
    result = collect_cell_result(make_cell(), cell_dir, 0, 1.0, "local", refused=refused)

    assert result.status == "error"
    assert "junit.xml is a symbolic link" in result.reason
    assert "host secret" not in result.reason
    assert not (cell_dir / "junit.xml").exists() and not work.exists()
    assert result.fingerprint == {"torch": "2.13.0"}


def test_harvested_results_are_judged_from_the_copies(tmp_path: Path) -> None:
    cell_dir = tmp_path / "cpu-gloo-ws2"
    work = prepare_cell_dir(make_cell(), cell_dir)
    (work / "junit.xml").write_text(JUNIT)

    assert harvest_work_dir(cell_dir) == []
    result = collect_cell_result(make_cell(), cell_dir, 0, 1.0, "local")

    assert result.status == "passed" and result.counts.passed == 2
    assert result.backend == "gloo" and (cell_dir / "junit.xml").stat().st_mode & 0o777 == 0o644


def test_a_corrupt_junit_says_so_rather_than_inventing_an_exit_code(tmp_path: Path) -> None:
    cell_dir = tmp_path / "cpu-gloo-ws2"
    prepare_cell_dir(make_cell(), cell_dir)
    (cell_dir / "junit.xml").write_text("<testsuites><testsuite")

    result = collect_cell_result(make_cell(), cell_dir, 1, 1.0, "local")

    assert result.status == "error" and result.reason.startswith("junit.xml is unreadable: not well-formed")


def test_a_huge_log_keeps_its_head_and_tail(tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    with BoundedLog(path, head=100, tail=1000) as log:
        log.write(b"FIRST LINE\n")
        for _ in range(10_000):
            log.write(b"y" * 99 + b"\n")
        log.write(b"LAST LINE\n")

    data = path.read_bytes()
    assert data.startswith(b"FIRST LINE\n") and data.endswith(b"LAST LINE\n")
    assert len(data) < 100 + 1000 + 200
    assert b"bytes of output dropped here" in data
