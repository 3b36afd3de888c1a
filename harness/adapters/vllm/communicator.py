"""vLLM's device communicators behind the conformance suite's API; every call goes to vLLM's own code.

Runs on a rank. Collectives go to one communicator vLLM would build for a group of all ranks, or of the
ranks of a sub-group (constructed as vLLM's group coordinators construct theirs, which pass the same group as
cpu_group and device_group on cpu/gloo); dispatch/combine go to the EP group's communicator and its
all2all manager, inside a forward context that carries the per-rank token counts. What vLLM returns is
returned unchanged, what it raises propagates: the suite judges vLLM, not this file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.adapters.vllm import engine_shim

if TYPE_CHECKING:
    import torch

    from harness.adapters.base import TargetPlatform
    from harness.common.dist_env import DistEnv


class VllmCommunicator:
    """One rank's vLLM communicator for `platform` (cpu, or xpu/cuda logic emulated on cpu over gloo)."""

    def __init__(
        self, env: DistEnv, platform: TargetPlatform, all2all_backend: str, group: Any = None
    ) -> None:
        engine_shim.select_cpu_target()
        engine_shim.install_platform(platform.name)
        from vllm.config import set_current_vllm_config

        self.platform = platform.name
        self.emulated = platform.emulated_on is not None
        self.device = env.device
        self._env = env
        self._over_subgroup = group is not None
        group = env.group if group is None else group
        self._config = engine_shim.engine_config(env.rank, env.world_size, all2all_backend)
        self._state: engine_shim.ParallelState | None = None
        with set_current_vllm_config(self._config):
            self._impl = engine_shim.communicator_class(platform.name)(
                cpu_group=group, device=env.device, device_group=group, unique_name="world"
            )
        # The group's own numbering, as vLLM keeps it (rank_in_group, world_size of cpu_group).
        self.rank = self._impl.rank_in_group
        self.world_size = self._impl.world_size

    @property
    def implementation(self) -> Any:
        """The vLLM communicator the collectives run on."""
        return self._impl

    # Collectives: vLLM's signatures already match the suite's, so the caller's arguments go through as given
    # and vLLM's own defaults apply (send to the next rank, gather to rank 0, ...).
    def all_reduce(self, *args: Any, **kwargs: Any) -> Any:
        return self._impl.all_reduce(*args, **kwargs)

    def all_gather(self, *args: Any, **kwargs: Any) -> Any:
        return self._impl.all_gather(*args, **kwargs)

    def all_gatherv(self, *args: Any, **kwargs: Any) -> Any:
        return self._impl.all_gatherv(*args, **kwargs)

    def reduce_scatter(self, *args: Any, **kwargs: Any) -> Any:
        return self._impl.reduce_scatter(*args, **kwargs)

    def reduce_scatterv(self, *args: Any, **kwargs: Any) -> Any:
        return self._impl.reduce_scatterv(*args, **kwargs)

    def gather(self, *args: Any, **kwargs: Any) -> Any:
        return self._impl.gather(*args, **kwargs)

    def broadcast(self, *args: Any, **kwargs: Any) -> Any:
        return self._impl.broadcast(*args, **kwargs)

    def send(self, *args: Any, **kwargs: Any) -> None:
        self._impl.send(*args, **kwargs)

    def recv(self, *args: Any, **kwargs: Any) -> Any:
        return self._impl.recv(*args, **kwargs)

    # All2all: vLLM's EP-group communicator, sizes through the forward context as a forward pass gives them.
    @property
    def all2all_backend(self) -> str:
        """The backend name the EP communicator holds (vLLM keeps what the config said)."""
        return self._parallel_state().ep_communicator.all2all_backend

    @property
    def all2all_manager(self) -> Any:
        return self._parallel_state().ep_communicator.all2all_manager

    def dispatch(
        self,
        hidden_states: torch.Tensor,
        topk_weights: torch.Tensor,
        topk_ids: torch.Tensor,
        sizes: list[int],
        extra_tensors: list[torch.Tensor] | None = None,
    ) -> Any:
        state = self._parallel_state()
        with state.tokens_per_rank(sizes):
            return state.ep_communicator.dispatch(
                hidden_states, topk_weights, topk_ids, extra_tensors=extra_tensors
            )

    def dispatch_router_logits(
        self,
        hidden_states: torch.Tensor,
        router_logits: torch.Tensor,
        sizes: list[int],
        extra_tensors: list[torch.Tensor] | None = None,
    ) -> Any:
        state = self._parallel_state()
        with state.tokens_per_rank(sizes):
            return state.ep_communicator.dispatch_router_logits(
                hidden_states, router_logits, extra_tensors=extra_tensors
            )

    def combine(self, hidden_states: torch.Tensor, sizes: list[int]) -> torch.Tensor:
        state = self._parallel_state()
        with state.tokens_per_rank(sizes):
            return state.ep_communicator.combine(hidden_states)

    def destroy(self) -> None:
        self._impl.destroy()
        if self._state is not None:
            self._state.destroy()
            self._state = None

    def _parallel_state(self) -> engine_shim.ParallelState:
        # Built on first use: DP/EP groups cost a dozen group creations, which plain collectives never need.
        if self._over_subgroup:
            # vLLM's EP group is built from its world group, which must be the whole process group.
            raise NotImplementedError(
                "the vLLM adapter runs dispatch/combine on the world's EP group only, not on a sub-group"
            )
        if self._state is None:
            self._state = engine_shim.ParallelState(
                self._config, self.platform, self._env.rank, self.world_size
            )
        return self._state

    def __repr__(self) -> str:
        kind = f"{self.platform} logic emulated on gloo" if self.emulated else self.platform
        return f"<vLLM {type(self._impl).__name__} ({kind}), rank {self.rank} of {self.world_size}>"
