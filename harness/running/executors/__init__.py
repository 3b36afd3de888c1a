"""Executors run one cell each: `local` on this host, `docker` in a container, `slurm` as a Slurm job
(the last two imported only when used)."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from harness.common.errors import ConfigurationError
from harness.running.executors.local import LocalExecutor
from harness.running.executors.protocol import Executor

# Imported when used: a node task (-m harness.running.executors.slurm_node) must not load them first.
if TYPE_CHECKING:
    from harness.config.model import SlurmSpec
    from harness.running.executors.docker import DockerExecutor


def open_docker_executor(
    project_root: Path,
    *,
    matrix_dir: Path | None = None,
    offline: bool = False,
    run_id: str | None = None,
) -> DockerExecutor:
    """A DockerExecutor for the project (a context manager: it holds an engine client); ConfigurationError
    when the SDK or the engine is missing.

    `matrix_dir`: the matrix's directory, inside `project_root` (default: the same). `offline`: images it
    has to build get a debootstrap base and a host wheelhouse (no registry needed).
    """
    try:
        from harness.running.executors.docker import DockerExecutor
    except ImportError as error:
        raise ConfigurationError(
            f"the Docker executor is unavailable: {error} (pip install docker)"
        ) from None
    return DockerExecutor(project_root, matrix_dir=matrix_dir, offline=offline, run_id=run_id)


def open_executors(
    resources: ExitStack,
    names: Iterable[str],
    matrix_dir: Path,
    docker: Executor | None = None,
    run_id: str = "",
    project_root: Path | None = None,
    slurm_options: SlurmSpec | None = None,
) -> dict[str, Executor]:
    """One executor per name the plan uses ("local", "docker", "slurm"), reusing the Docker executor of
    planning; each is entered on `resources` as it is made, so that unwinding it closes every one.

    Local cells and Slurm jobs run in `matrix_dir`; containers mount `project_root` (default: `matrix_dir`);
    `slurm_options`: the command line's --slurm-*."""
    executors: dict[str, Executor] = {}
    for name in sorted(set(names)):
        if name == "local":
            executor: Executor = LocalExecutor(matrix_dir, run_id=run_id)
        elif name == "slurm":
            from harness.running.executors.slurm import SlurmExecutor

            executor = SlurmExecutor(matrix_dir, run_id=run_id, options=slurm_options)
        else:
            executor = docker or open_docker_executor(
                project_root or matrix_dir, matrix_dir=matrix_dir, run_id=run_id or None
            )
        executors[name] = resources.enter_context(executor)
    return executors
