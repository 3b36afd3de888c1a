"""Executors run one cell each: `local` on this host, `docker` in a container (imported only when used)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from harness.errors import ConfigurationError
from harness.executors.local import LocalExecutor
from harness.model import Cell, Executor
from harness.plan import ImageCheck


def _docker_executor(project_root: Path) -> Executor:
    try:
        from harness.executors.docker import DockerExecutor
    except ImportError as error:
        raise ConfigurationError(
            f"the Docker executor is unavailable: {error} (pip install docker)"
        ) from None
    return DockerExecutor(project_root)


def make_executors(names: Iterable[str], project_root: Path) -> dict[str, Executor]:
    """One executor per name the plan uses ("local", "docker")."""
    executors: dict[str, Executor] = {}
    for name in sorted(set(names)):
        executors[name] = LocalExecutor(project_root) if name == "local" else _docker_executor(project_root)
    return executors


def docker_image_check(project_root: Path) -> ImageCheck | None:
    """DockerExecutor.image_status for planning, or None when the Docker executor cannot be loaded."""
    try:
        executor = _docker_executor(project_root)
    except ConfigurationError:
        return None
    image_status = getattr(executor, "image_status", None)

    def check(cell: Cell) -> tuple[bool, str]:
        return image_status(cell) if image_status else (False, "the Docker executor cannot check images")

    return check
