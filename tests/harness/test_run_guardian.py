"""The run guardian's cleanup alone (no engine, no processes): what it removes when Docker answers oddly."""

from __future__ import annotations

import docker.errors
import pytest

import docker
from harness.running.guardian import remove_containers_of_run


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


class FilteringEngine:
    """A Docker engine's container and network lists as the engine answers them: `filters` honoured (label
    `key=value` matched exactly), and a filter key the engine does not know refused, as dockerd refuses it
    ("invalid filter 'labels'", HTTP 400)."""

    KNOWN_FILTERS = {"label", "name", "status", "id"}

    def __init__(self, labels_by_name: dict[str, dict[str, str]]) -> None:
        self.labels_by_name = labels_by_name
        self.removed: list[str] = []
        engine = self

        class Item:
            def __init__(self, name: str) -> None:
                self.name = name

            def remove(self, force: bool = False) -> None:
                engine.removed.append(self.name)

        class Listing:
            def __init__(self, prefix: str) -> None:
                self.prefix = prefix

            def list(self, all: bool = False, filters: dict | None = None, ignore_removed: bool = False):
                return [Item(name) for name in engine.matching(filters or {}) if name.startswith(self.prefix)]

        self.containers, self.networks = Listing("container-"), Listing("network-")

    def matching(self, filters: dict) -> list[str]:
        for key in filters:
            if key not in self.KNOWN_FILTERS:
                raise docker.errors.APIError(f"400 Client Error: invalid filter '{key}'")
        wanted = filters.get("label")
        wanted = [wanted] if isinstance(wanted, str) else list(wanted or [])
        return [
            name
            for name, labels in self.labels_by_name.items()
            if all(dict([label.split("=", 1)]).items() <= labels.items() for label in wanted)
        ]


def test_the_guardian_removes_its_runs_containers_and_networks_and_nothing_of_another_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine = FilteringEngine(
        {
            "container-ours-0": {"comm-harness.run": "run-1"},
            "container-ours-1": {"comm-harness.run": "run-1", "comm-harness.cell": "cpu-gloo-ws2"},
            "container-theirs": {"comm-harness.run": "run-2"},
            "container-unlabelled": {},
            "network-ours": {"comm-harness.run": "run-1"},
            "network-theirs": {"comm-harness.run": "run-11"},
        }
    )
    monkeypatch.setattr(docker, "from_env", lambda timeout: engine)
    assert remove_containers_of_run("run-1") == 2
    assert sorted(engine.removed) == ["container-ours-0", "container-ours-1", "network-ours"]
