"""Resolve an all2all backend name for a platform, by one rule for every platform.

The rule: a name nobody knows is an error on every platform; a known name never is. A deprecated alias
resolves to its target with a `DeprecatedAll2AllBackendWarning`. A known backend that cannot run here,
because the platform has no manager for it, its library is not installed, or it was removed, falls back
to the default backend with an `All2AllBackendFallbackWarning` naming the platform, the name, the reason
and the fallback. Every warning is also logged.
"""

from __future__ import annotations

import difflib
import importlib.util
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass

from communicators.backends import (
    DEFAULT_ALL2ALL_BACKEND,
    PLATFORMS,
    All2AllBackendEntry,
    find_backend_entry,
    valid_all2all_backend_names,
)
from communicators.errors import (
    All2AllBackendFallbackWarning,
    All2AllBackendWarning,
    DeprecatedAll2AllBackendWarning,
    RemovedAll2AllBackendWarning,
    UnknownAll2AllBackendError,
)

logger = logging.getLogger("communicators")


def library_installed(module: str) -> bool:
    """Whether `module` can be imported here, found without importing it (importing may touch a GPU)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@dataclass(frozen=True)
class All2AllResolution:
    """What a (platform, name) pair becomes: the canonical backend and the warnings to give on the way."""

    platform: str
    requested: str
    backend: str
    warnings: tuple[tuple[type[All2AllBackendWarning], str], ...] = ()


def resolve_all2all_backend(platform: str, name: str) -> str:
    """The canonical all2all backend that runs for `name` on `platform`, warning (and logging) on the way."""
    resolution = plan_all2all_backend(platform, name)
    for category, message in resolution.warnings:
        logger.warning(message)
        warnings.warn(message, category, stacklevel=2)
    return resolution.backend


def plan_all2all_backend(
    platform: str, name: str, is_installed: Callable[[str], bool] | None = None
) -> All2AllResolution:
    """The rule of the module docstring, without side effects; `is_installed(module)` answers for libs."""
    is_installed = is_installed or library_installed
    if platform not in PLATFORMS:
        raise UnknownAll2AllBackendError(
            f"Unknown platform {platform!r} for all2all backend {name!r}; "
            f"expected one of {', '.join(PLATFORMS)}."
        )
    entry = find_backend_entry(name) if isinstance(name, str) else None
    if entry is None:
        raise UnknownAll2AllBackendError(_unknown_name_message(platform, name))
    notices: list[tuple[type[All2AllBackendWarning], str]] = []
    described = repr(entry.name)
    if entry.kind == "alias":
        target = _alias_target(entry)
        notices.append(
            (
                DeprecatedAll2AllBackendWarning,
                f"all2all backend {entry.name!r} is deprecated: it is an alias of {target.name!r}; "
                f"ask for {target.name!r} instead" + (f" ({entry.note})." if entry.note else "."),
            )
        )
        described = f"{entry.name!r} (alias of {target.name!r})"
        entry = target
    reason = None
    category: type[All2AllBackendWarning] = All2AllBackendFallbackWarning
    if entry.kind == "removed":
        reason = f"all2all backend {described} was removed ({entry.note})"
        category = RemovedAll2AllBackendWarning
    elif platform not in entry.platforms:
        reason = (
            f"all2all backend {described} is not available on {platform} "
            f"(only on {', '.join(entry.platforms)})"
        )
    elif entry.library is not None and not is_installed(entry.library):
        reason = (
            f"all2all backend {described} needs the Python package {entry.library!r}, which is not installed "
            "(install it to use this backend)"
        )
    if reason is None:
        return All2AllResolution(platform, name, entry.name, tuple(notices))
    notices.append((category, f"{reason}; on {platform} falling back to {DEFAULT_ALL2ALL_BACKEND!r}."))
    return All2AllResolution(platform, name, DEFAULT_ALL2ALL_BACKEND, tuple(notices))


def _alias_target(alias: All2AllBackendEntry) -> All2AllBackendEntry:
    target = find_backend_entry(alias.target) if alias.target else None
    if target is None or target.kind == "alias":
        raise AssertionError(f"backend table: alias {alias.name!r} points at {alias.target!r}, not a backend")
    return target


def _unknown_name_message(platform: str, name: object) -> str:
    valid = valid_all2all_backend_names()
    message = f"Unknown all2all backend {name!r} (platform {platform}). Valid names: {', '.join(valid)}."
    close = difflib.get_close_matches(name, valid, n=1) if isinstance(name, str) else []
    if close:
        message += f" Did you mean {close[0]!r}?"
    return message
