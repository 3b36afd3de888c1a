"""Fixtures for the harness tests: a small project (tests, Dockerfile, matrix.yaml) in a tmp dir."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from cli_runs import TINY_TESTS


@pytest.fixture
def project(tmp_path: Path):
    """A directory with a Dockerfile and a tests/ tree; returns a function writing matrix.yaml into it."""
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "cpu.Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_tiny.py").write_text(TINY_TESTS)

    def write(matrix: str, name: str = "matrix.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(matrix).lstrip())
        return path

    return write
