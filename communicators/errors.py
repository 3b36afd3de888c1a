"""Warnings and errors of the communicators package; every one names what was asked and what to do."""

from __future__ import annotations


class All2AllBackendWarning(UserWarning):
    """The all2all backend asked for is not the one that will run, or its name is outdated."""


class DeprecatedAll2AllBackendWarning(All2AllBackendWarning):
    """A deprecated alias was used; the message names the alias and the canonical name it maps to."""


class All2AllBackendFallbackWarning(All2AllBackendWarning):
    """A known backend is unavailable here (platform or library); the default backend runs instead."""


class RemovedAll2AllBackendWarning(All2AllBackendFallbackWarning):
    """A backend that was removed was asked for; the default backend runs instead."""


class UnknownAll2AllBackendError(ValueError):
    """No platform knows the all2all backend name (or the platform is unknown)."""


class All2AllManagerUnavailableError(NotImplementedError):
    """The backend resolved, but its manager lives in the serving engine, not in this package."""
