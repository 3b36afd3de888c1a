"""Fixtures of the Docker tests: a real engine (or a clear skip/fail), the CPU image, an executor.

This directory's cells/ are also collected inside containers (conftest files along their path load
there too), so nothing here imports the docker package at module level or adds hooks.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CELLS = "tests/docker/cells"


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """A client of a Docker engine that answers; without one, fail in CI (CI=true) and skip elsewhere."""
    from harness.common.errors import DockerUnavailableError
    from harness.running.containers import connect_engine

    try:
        client = connect_engine()
    except DockerUnavailableError as error:
        message = f"the Docker tests need an engine: {error}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: these tests must run, not skip)", pytrace=False)
        pytest.skip(message)
    yield client
    client.close()


@pytest.fixture(scope="session")
def cpu_image(docker_client: Any) -> str:
    """The CPU image's tag, built offline once (a few minutes the first time, cached by tag after)."""
    from harness.running.images import build_image, recipe_for

    recipe = recipe_for("cpu", repo_root=REPO_ROOT)
    return build_image(docker_client, recipe, offline=True, log=lambda _: None).tag


@pytest.fixture
def executor(docker_client: Any, cpu_image: str) -> Iterator[Any]:
    """A DockerExecutor for one test; after it, no container of this process may be left."""
    from harness.running.containers import LABEL_PID
    from harness.running.executors.docker import DockerExecutor

    with DockerExecutor(REPO_ROOT, offline=True, client=docker_client) as docker_executor:
        yield docker_executor
    left = docker_client.containers.list(
        all=True, filters={"label": f"{LABEL_PID}={os.getpid()}"}, ignore_removed=True
    )
    assert not left, f"containers left behind: {[container.name for container in left]}"
