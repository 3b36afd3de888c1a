"""The harness's containers on a Docker engine: the engine client, their labels, finding and removing them.

The one owner of container clean-up. Every container the Docker executor creates carries the labels of
`cell_labels`; the executor removes each of its cells' containers as the cell ends, a run's at its close,
and those of a dead harness on this host when a run starts (`remove_stale_containers`); the guardian
removes a dead run's (`remove_containers_of_run`). Listing and removal tolerate docker-py's races: a
container removed between the engine's list and its inspection, or one whose removal is already in
progress, is gone or going, which is what was asked.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from harness.common.errors import DockerUnavailableError
from harness.host.processes import pid_alive

LABEL = "comm-harness"
LABEL_CELL = "comm-harness.cell"
LABEL_RUN = "comm-harness.run"
LABEL_PID = "comm-harness.pid"
LABEL_HOST = "comm-harness.host"
LABEL_NODE = "comm-harness.node"


def connect_engine(timeout_s: float = 60.0) -> Any:
    """A Docker client, or DockerUnavailableError saying why none answers."""
    try:
        import docker
    except ImportError:
        raise DockerUnavailableError(
            "the docker Python package is not installed: pip install 'docker>=7'"
        ) from None
    try:
        client = docker.from_env(timeout=timeout_s)
        client.ping()
    except Exception as error:  # the SDK raises DockerException, requests' errors or OSError
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        raise DockerUnavailableError(
            f"no Docker engine answers ({first_line}).\n"
            "Start one (`bash .ci/docker-engine.sh`, or `dockerd`) or point DOCKER_HOST at one."
        ) from None
    return client


@contextmanager
def engine_client(timeout_s: float = 60.0) -> Iterator[Any]:
    """`connect_engine`'s client, closed on the way out."""
    client = connect_engine(timeout_s)
    try:
        yield client
    finally:
        client.close()


def cell_labels(run_id: str, cell_id: str) -> dict[str, str]:
    """The labels of every container of a cell: whose harness (pid, host) and run it belongs to."""
    return {
        LABEL: "1",
        LABEL_CELL: cell_id,
        LABEL_RUN: run_id,
        LABEL_PID: str(os.getpid()),
        LABEL_HOST: socket.gethostname(),
    }


def containers_of_run(client: Any, run_id: str) -> list[Any]:
    """The containers of run `run_id`, stopped ones included."""
    return _listed(client, {"label": f"{LABEL_RUN}={run_id}"})


def stale_containers(client: Any) -> list[Any]:
    """Labelled containers whose harness process on this host is gone."""
    hostname = socket.gethostname()
    stale = []
    for container in _listed(client, {"label": LABEL}):
        labels = container.labels
        if labels.get(LABEL_HOST) not in (None, hostname):
            continue  # another host's harness shares this engine: its liveness is not ours to judge
        pid = labels.get(LABEL_PID, "")
        if not (pid.isdigit() and pid_alive(int(pid))):
            stale.append(container)
    return stale


def remove_containers(containers: Iterable[Any]) -> list[str]:
    """Remove each container (killed if running); the names of those removed or already going.

    An engine error other than the races does not keep the rest: it is raised once every one was tried.
    """
    removed, errors = [], []
    for container in containers:
        try:
            remove_container(container)
            removed.append(container.name)
        except Exception as error:  # an APIError, or the engine went away: try the others
            errors.append(error)
    if errors:
        raise errors[0]
    return removed


def remove_container(container: Any) -> None:
    """Remove `container` (killed if running); quiet when it is gone or its removal already in progress."""
    import docker.errors

    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as error:
        # "removal of container ... is already in progress" is the one benign conflict; the rest is seen.
        if "already in progress" not in str(error):
            raise


def remove_stale_containers(client: Any) -> list[str]:
    """Remove the containers dead harnesses on this host left behind; their names."""
    return remove_containers(stale_containers(client))


def remove_containers_of_run(run_id: str) -> int:
    """The guardian's clean-up: remove the run's containers; 0 when no Docker engine answers (then none of
    the run's can be running there) or the engine fails (every container was tried: nothing more to do)."""
    try:
        with engine_client(timeout_s=10) as client:
            return len(remove_containers(containers_of_run(client, run_id)))
    except Exception:  # DockerUnavailableError, or the engine's error once every container was tried
        return 0


def _listed(client: Any, filters: dict[str, str]) -> list[Any]:
    # docker-py lists, then inspects each container: without ignore_removed, one removed in between
    # raises NotFound out of the whole list.
    return client.containers.list(all=True, filters=filters, ignore_removed=True)
