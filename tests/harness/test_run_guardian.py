"""Container clean-up alone (no engine, no processes): what the guardian and the executor remove when Docker
answers oddly (harness/running/containers.py, their one owner)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import docker.errors
import pytest

import docker
from harness.running.containers import (
    LABEL,
    LABEL_HOST,
    LABEL_PID,
    LABEL_RUN,
    containers_of_run,
    remove_containers,
    remove_containers_of_run,
    stale_containers,
)


class Engine:
    """A Docker client's container list as the engine answers it: `filters` honoured (label `key` or
    `key=value` matched exactly), and a filter key the engine does not know refused, as dockerd refuses it
    ("invalid filter 'labels'", HTTP 400). `failing` maps a container's name to what its removal raises."""

    KNOWN_FILTERS = {"label", "name", "status", "id"}

    def __init__(self, labels_by_name: dict[str, dict[str, str]], failing: dict | None = None) -> None:
        self.labels_by_name = labels_by_name
        self.failing = failing or {}
        self.removed: list[str] = []
        self.closed = False
        engine = self

        class Container:
            def __init__(self, name: str) -> None:
                self.name = name
                self.labels = engine.labels_by_name[name]

            def remove(self, force: bool = False) -> None:
                assert force, "a running container is removed too"
                if self.name in engine.failing:
                    raise engine.failing[self.name]
                engine.removed.append(self.name)

        class Containers:
            def list(self, all: bool = False, filters: dict | None = None, ignore_removed: bool = False):
                # docker-py lists, then inspects each: one removed in between raised NotFound out of the
                # whole list unless ignore_removed (found by the clean-clone CI run).
                if not ignore_removed:
                    raise docker.errors.NotFound("No such container: gone-meanwhile")
                return [Container(name) for name in engine.matching(filters or {})]

        self.containers = Containers()

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True

    def matching(self, filters: dict) -> list[str]:
        for key in filters:
            if key not in self.KNOWN_FILTERS:
                raise docker.errors.APIError(f"400 Client Error: invalid filter '{key}'")
        wanted = filters.get("label")
        wanted = [wanted] if isinstance(wanted, str) else list(wanted or [])
        return [
            name
            for name, labels in self.labels_by_name.items()
            if all(
                (dict([label.split("=", 1)]).items() <= labels.items()) if "=" in label else label in labels
                for label in wanted
            )
        ]


def test_the_guardian_removes_its_runs_containers_and_nothing_of_another_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = Engine(
        {
            "ours-0": {LABEL_RUN: "run-1"},
            "ours-1": {LABEL_RUN: "run-1", "comm-harness.cell": "cpu-gloo-ws2"},
            "theirs": {LABEL_RUN: "run-11"},
            "unlabelled": {},
        }
    )
    monkeypatch.setattr(docker, "from_env", lambda timeout: engine)
    assert remove_containers_of_run("run-1") == 2
    assert sorted(engine.removed) == ["ours-0", "ours-1"]
    assert engine.closed


def test_the_guardian_removes_nothing_when_no_engine_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_engine(timeout: float) -> None:
        raise docker.errors.DockerException("Error while fetching server API version")

    monkeypatch.setattr(docker, "from_env", no_engine)
    assert remove_containers_of_run("run-1") == 0


def test_removal_races_are_quiet_and_another_engine_error_is_raised_after_every_container_was_tried() -> None:
    # A container the executor's own clean-up removed meanwhile (404), or whose removal Docker already
    # runs (409), is gone or going: what was asked. Any other error is seen, but never keeps the rest.
    in_progress = docker.errors.APIError("409 Client Error: removal of container x is already in progress")
    engine = Engine(
        {name: {LABEL_RUN: "run-1"} for name in ("gone", "going", "broken", "last")},
        failing={
            "gone": docker.errors.NotFound("No such container: gone"),
            "going": in_progress,
            "broken": docker.errors.APIError("500 Server Error: driver failed removing container"),
        },
    )
    containers = containers_of_run(engine, "run-1")
    with pytest.raises(docker.errors.APIError, match="driver failed"):
        remove_containers(containers)
    assert engine.removed == ["last"]

    del engine.failing["broken"]
    assert remove_containers(containers) == ["gone", "going", "broken", "last"]


def test_stale_containers_are_those_of_dead_harnesses_on_this_host() -> None:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead_pid = finished.stdout.decode().strip()
    here = socket.gethostname()
    engine = Engine(
        {
            "dead-harness": {LABEL: "1", LABEL_HOST: here, LABEL_PID: dead_pid},
            "live-harness": {LABEL: "1", LABEL_HOST: here, LABEL_PID: str(os.getpid())},
            "other-host": {LABEL: "1", LABEL_HOST: f"not-{here}", LABEL_PID: dead_pid},
            "no-pid": {LABEL: "1"},
            "not-ours": {LABEL_PID: dead_pid},
        }
    )
    assert sorted(c.name for c in stale_containers(engine)) == ["dead-harness", "no-pid"]
