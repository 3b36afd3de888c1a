"""comm-harness's view of this engine: registered as `myengine` under the `comm_harness.communicators` entry
point (pyproject.toml), so a matrix's `communicator: [myengine]` axis runs the suite on RingCommunicator."""

from __future__ import annotations

import importlib.metadata
from typing import Any

from harness.adapters.base import KnownGap, TargetPlatform


class MyEngineAdapter:
    name = "myengine"
    description = "myengine's RingCommunicator (the template of examples/engine-template)"
    # Where the engine is known to differ from what a test expects: strict xfails (see the harness's docs,
    # "Qualifying another implementation"). None here.
    known_gaps: tuple[KnownGap, ...] = ()

    def platforms(self, device: str) -> tuple[TargetPlatform, ...]:
        return (TargetPlatform(device),)

    def preload(self) -> None:
        # Imported once in the pytest process, before the ranks fork, so no rank pays for it.
        import myengine  # noqa: F401

    def create(self, env: Any, platform: TargetPlatform, all2all_backend: str) -> Any:
        from myengine import RingCommunicator

        return RingCommunicator(env.group, env.device)

    def version(self) -> str | None:
        try:
            return importlib.metadata.version("myengine")
        except importlib.metadata.PackageNotFoundError:
            return None


ADAPTER = MyEngineAdapter()
