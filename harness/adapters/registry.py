"""Finding an adapter by name: the built-in ones, and any an installed package registers by entry point.

An engine ships its own adapter by declaring, in its pyproject.toml,

    [project.entry-points."comm_harness.communicators"]
    myengine = "myengine.testing.comm_harness_adapter:ADAPTER"

and `pytest --dist-communicator myengine` (or a matrix axis `communicator: [myengine]`) runs the suite on it.
The built-in adapters are listed here as well as in this project's own entry points, because cells often run
from a checkout that is not installed (containers mount it read-only; GPU hosts put it on PYTHONPATH).
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import Any

from harness.adapters.base import OPTIONAL_PROMISES, CommunicatorAdapter

ENTRY_POINT_GROUP = "comm_harness.communicators"
DEFAULT_COMMUNICATOR = "comm-harness"
BUILTIN_ADAPTERS: dict[str, str] = {
    DEFAULT_COMMUNICATOR: "harness.adapters.comm_harness:ADAPTER",
    "vllm": "harness.adapters.vllm:ADAPTER",
}


class UnknownCommunicatorError(ValueError):
    """No adapter of that name is built in or registered."""


class BrokenAdapterError(RuntimeError):
    """An adapter was found but does not load, or is not an adapter."""


def adapter_locations() -> dict[str, str]:
    """Every adapter name and where its object lives ("module:attribute"): built-in, then entry points."""
    locations = dict(BUILTIN_ADAPTERS)
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        locations.setdefault(entry_point.name, entry_point.value)
    return locations


def load_adapter(name: str) -> CommunicatorAdapter:
    """The adapter registered as `name`; raises UnknownCommunicatorError naming the known ones."""
    locations = adapter_locations()
    if name not in locations:
        known = ", ".join(sorted(locations))
        raise UnknownCommunicatorError(
            f"no communicator adapter named {name!r}; known: {known}. An engine registers its own under the "
            f"entry-point group {ENTRY_POINT_GROUP!r} (see README, 'Qualifying another implementation')"
        )
    location = locations[name]
    module_name, _, attribute = location.partition(":")
    try:
        loaded: Any = getattr(importlib.import_module(module_name), attribute or "ADAPTER")
    except (ImportError, AttributeError) as error:
        raise BrokenAdapterError(
            f"communicator adapter {name!r} ({location}) does not load: {error}"
        ) from error
    adapter = loaded() if isinstance(loaded, type) else loaded
    if not isinstance(adapter, CommunicatorAdapter):
        raise BrokenAdapterError(
            f"communicator adapter {name!r} ({location}) is a {type(adapter).__name__}, not an adapter: "
            "it needs name, description, known_gaps, platforms(), preload(), create() and version()"
        )
    # A promise no test knows (a typo) would leave its test skipped as "not promised", silently.
    unknown = sorted(set(getattr(adapter, "promises", ())) - OPTIONAL_PROMISES)
    if unknown:
        raise BrokenAdapterError(
            f"communicator adapter {name!r} ({location}) promises {', '.join(map(repr, unknown))}, which no "
            f"test checks; the optional promises are: {', '.join(sorted(OPTIONAL_PROMISES))}"
        )
    return adapter
