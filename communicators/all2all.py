"""All2all managers: how MoE tokens reach every rank's experts (dispatch) and come back (combine).

Sizes (tokens per rank) are passed explicitly on every call: there is no global forward context.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from communicators.backends import ALL2ALL_BACKENDS, find_backend_entry
from communicators.errors import All2AllManagerUnavailableError

if TYPE_CHECKING:
    from communicators.base import DeviceCommunicatorBase


class All2AllManagerBase:
    """The interface of an all2all manager; a manager works through its communicator's collectives."""

    def __init__(self, communicator: DeviceCommunicatorBase) -> None:
        self.communicator = communicator

    def dispatch(
        self,
        hidden_states: torch.Tensor,
        topk_weights: torch.Tensor,
        topk_ids: torch.Tensor,
        sizes: Sequence[int],
        extra_tensors: Sequence[torch.Tensor] | None = None,
    ) -> tuple:
        """Send this rank's tokens (`sizes[rank]` rows) where the experts are; see the subclass."""
        raise NotImplementedError

    def dispatch_router_logits(
        self,
        hidden_states: torch.Tensor,
        router_logits: torch.Tensor,
        sizes: Sequence[int],
        extra_tensors: Sequence[torch.Tensor] | None = None,
    ) -> tuple:
        """Like `dispatch`, with router logits instead of top-k weights and ids."""
        raise NotImplementedError

    def combine(self, hidden_states: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
        """Bring the expert output back to the ranks that own the tokens."""
        raise NotImplementedError

    def destroy(self) -> None:
        """Release what the manager holds (nothing here)."""


class AgRsAll2AllManager(All2AllManagerBase):
    """Dispatch all-gathers every rank's tokens in rank order; combine reduce-scatters them back.

    Returns, for dispatch: (hidden_states, topk_weights, topk_ids), each with sum(sizes) rows, plus a
    list of the gathered extra tensors as a fourth item when `extra_tensors` is given (vLLM's shape).
    """

    def dispatch(
        self,
        hidden_states: torch.Tensor,
        topk_weights: torch.Tensor,
        topk_ids: torch.Tensor,
        sizes: Sequence[int],
        extra_tensors: Sequence[torch.Tensor] | None = None,
    ) -> tuple:
        """All of every rank's tokens, top-k weights and ids (and extra tensors), in rank order."""
        return self._gather([hidden_states, topk_weights, topk_ids], sizes, extra_tensors)

    def dispatch_router_logits(
        self,
        hidden_states: torch.Tensor,
        router_logits: torch.Tensor,
        sizes: Sequence[int],
        extra_tensors: Sequence[torch.Tensor] | None = None,
    ) -> tuple:
        """All of every rank's tokens and router logits (and extra tensors), in rank order."""
        return self._gather([hidden_states, router_logits], sizes, extra_tensors)

    def combine(self, hidden_states: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
        """This rank's `sizes[rank]` rows of the expert output, summed over every rank's contribution."""
        return self.communicator.reduce_scatterv(hidden_states, dim=0, sizes=sizes)

    def _gather(
        self,
        tensors: list[torch.Tensor],
        sizes: Sequence[int],
        extra_tensors: Sequence[torch.Tensor] | None,
    ) -> tuple:
        extras = list(extra_tensors) if extra_tensors is not None else []
        gathered = self.communicator.all_gatherv([*tensors, *extras], dim=0, sizes=sizes)
        if extra_tensors is None:
            return tuple(gathered)
        return (*gathered[: len(tensors)], gathered[len(tensors) :])


_MANAGER_CLASSES: dict[str, type[All2AllManagerBase]] = {cls.__name__: cls for cls in (AgRsAll2AllManager,)}


def create_all2all_manager(communicator: DeviceCommunicatorBase) -> All2AllManagerBase:
    """The manager for the communicator's resolved backend, or a clear error when it lives elsewhere."""
    name = communicator.all2all_backend
    entry = find_backend_entry(name)
    manager_class = _MANAGER_CLASSES.get(entry.manager) if entry is not None and entry.manager else None
    if manager_class is None:
        has_library = entry is not None and entry.library
        library = f" (its library {entry.library!r} is installed)" if has_library else ""
        raise All2AllManagerUnavailableError(
            f"all2all backend {name!r} resolved on {communicator.platform}{library}, but its manager lives "
            f"in the serving engine (vLLM), not in this package, which implements only "
            f"{', '.join(repr(n) for n in _implemented_names())}; ask for 'allgather_reducescatter'."
        )
    return manager_class(communicator)


def _implemented_names() -> list[str]:
    return [entry.name for entry in ALL2ALL_BACKENDS if entry.manager in _MANAGER_CLASSES]
