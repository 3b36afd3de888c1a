"""The run guardian's cleanup alone (no engine, no processes): what it removes when Docker answers oddly."""

from __future__ import annotations

import docker.errors
import pytest

import docker
from harness.run_guardian import remove_containers_of_run


def test_the_guardian_removes_the_runs_containers_even_when_one_went_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # docker-py lists containers, then inspects each: one removed in between (by the executor's own
    # cleanup, or by Docker) raised NotFound out of the whole list, and the guardian then removed nothing,
    # leaving the rest running. Found by the clean-clone CI run (the same race in a test's polling loop).

    removed: list[str] = []

    class Container:
        def __init__(self, name: str) -> None:
            self.name = name

        def remove(self, force: bool) -> None:
            removed.append(self.name)

    class Containers:
        def list(self, all: bool, filters: dict, ignore_removed: bool = False) -> list[Container]:
            if not ignore_removed:
                raise docker.errors.NotFound("No such container: gone-meanwhile")
            return [Container("node0"), Container("node1")]  # the one that went is left out

    class Networks:
        def list(self, filters: dict) -> list:
            return []

    class Client:
        containers, networks = Containers(), Networks()

    monkeypatch.setattr(docker, "from_env", lambda timeout: Client())
    assert remove_containers_of_run("run-1") == 2
    assert removed == ["node0", "node1"]
