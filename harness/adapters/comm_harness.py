"""The default target: this repository's own `communicators` package, returned as is (no wrapper)."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.adapters.base import KnownGap, TargetPlatform

if TYPE_CHECKING:
    from harness.common.dist_env import DistEnv


class CommHarnessAdapter:
    """`communicators.create_communicator` on the run's own device; no known gaps."""

    name = "comm-harness"
    description = "comm-harness's reference communicators (the `communicators` package)"
    known_gaps: tuple[KnownGap, ...] = ()
    promises = frozenset({"all_reduce_in_place"})

    def platforms(self, device: str) -> tuple[TargetPlatform, ...]:
        # One platform, the run's device: the suite's test ids stay unparametrized. XPU emulation has its own
        # tests (test_xpu_emulated.py).
        return (TargetPlatform(device),)

    def preload(self) -> None:
        importlib.import_module("communicators")

    def backend_names(self) -> tuple[str, ...] | None:
        """Every name of the package's all2all backend table (communicators/backends.py), without torch.

        The communicators package imports torch on import (seconds); the table module is plain data, so it
        is loaded on its own from the package's directory. None when the package is not importable here.
        """
        package = importlib.util.find_spec("communicators")
        if package is None or not package.submodule_search_locations:
            return None
        location = Path(next(iter(package.submodule_search_locations))) / "backends.py"
        spec = importlib.util.spec_from_file_location("_comm_harness_backend_table", location)
        if spec is None or spec.loader is None:
            return None
        module = importlib.util.module_from_spec(spec)
        # dataclasses resolves the module by name while building the table's classes.
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return tuple(module.valid_all2all_backend_names())

    def create(self, env: DistEnv, platform: TargetPlatform, all2all_backend: str, group: Any = None) -> Any:
        from communicators import create_communicator

        # The group only when there is one: over the world, the call is the one the package documents.
        over = {"group": group} if group is not None else {}
        return create_communicator(env.device, all2all_backend=all2all_backend, **over)

    def version(self) -> str | None:
        try:
            return importlib.metadata.version("comm-harness")
        except importlib.metadata.PackageNotFoundError:
            return None


ADAPTER = CommHarnessAdapter()
