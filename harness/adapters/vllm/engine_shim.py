"""What a vLLM engine supplies around its communicators, and nothing more: config, groups, forward context.

Runs on a rank. vLLM keeps its parallel state in module globals, one copy per process: the plugin forks each
rank from pytest, so every rank builds its own here, on top of the process group the plugin already made.
None of vLLM's communicator code is replaced; the only thing swapped is the platform object, which tells
vLLM's group coordinators which communicator class to build (an XPU or CUDA engine has that platform).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

# The communicator class each platform gets from vLLM's platform (Platform.get_device_communicator_cls).
COMMUNICATOR_CLASSES: dict[str, str] = {
    "cpu": "vllm.distributed.device_communicators.cpu_communicator.CpuCommunicator",
    "xpu": "vllm.distributed.device_communicators.xpu_communicator.XpuCommunicator",
    "cuda": "vllm.distributed.device_communicators.cuda_communicator.CudaCommunicator",
}
# The modules every rank needs; importing them takes 30-100 s on a loaded 2-core host, so pytest does it once.
PRELOADED_MODULES = (
    "vllm.config",
    "vllm.forward_context",
    "vllm.distributed.parallel_state",
    *(qualname.rpartition(".")[0] for qualname in COMMUNICATOR_CLASSES.values()),
)


def select_cpu_target() -> None:
    """vLLM resolves its platform from VLLM_TARGET_DEVICE at first use; unset, it is 'unspecified' here."""
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    # pynccl needs libnccl and a GPU; the lean install has neither, the full one has the library.
    os.environ.setdefault("VLLM_DISABLE_PYNCCL", "1")


def communicator_class(platform: str) -> type:
    """vLLM's own communicator class for `platform`."""
    from vllm.utils.import_utils import resolve_obj_by_qualname

    return resolve_obj_by_qualname(COMMUNICATOR_CLASSES[platform])


def engine_config(rank: int, world_size: int, all2all_backend: str) -> Any:
    """A VllmConfig as a data-parallel expert-parallel engine has it: DP = the world, EP on, no launcher.

    `external_launcher` keeps init_distributed_environment from re-ranking the processes; it reads the rank
    from RANK, as torchrun sets it, so this rank's process gets torchrun's variables. The backend name
    is set after construction, as the communicators read it: ParallelConfig's own validation (its Literal
    of names, the rewrite of 'naive') is the engine's layer, not the communicators'.
    """
    from vllm.config import ParallelConfig, VllmConfig

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size))
    parallel = ParallelConfig(
        data_parallel_size=world_size,
        enable_expert_parallel=True,
        distributed_executor_backend="external_launcher",
    )
    config = VllmConfig(parallel_config=parallel)
    # After construction: VllmConfig's checks would rewrite 'naive'/'pplx' before a communicator saw them.
    config.parallel_config.all2all_backend = all2all_backend
    return config


def install_platform(platform: str) -> None:
    """Make vLLM's group coordinators build `platform`'s communicator class, on the CPU (emulation).

    An XPU or CUDA engine gets its class from its own platform object; here a CPU platform that names the
    XPU/CUDA class stands in for it, set the way vLLM's own CLI sets its platform.
    """
    import vllm.platforms
    from vllm.platforms.cpu import CpuPlatform

    qualname = COMMUNICATOR_CLASSES[platform]

    class EmulatingPlatform(CpuPlatform):
        @classmethod
        def get_device_communicator_cls(cls) -> str:
            return qualname

    vllm.platforms.current_platform = EmulatingPlatform()


class ParallelState:
    """vLLM's world, DP and EP groups on this rank, built with `config` current, torn down by `destroy`."""

    def __init__(self, config: Any, platform: str, rank: int, world_size: int) -> None:
        import torch.distributed as dist
        from vllm.config import set_current_vllm_config
        from vllm.distributed import parallel_state

        if platform != "cpu":
            install_platform(platform)
        self.config = config
        with set_current_vllm_config(config):
            # The default process group exists already (the plugin's): vLLM wraps it as its world group.
            parallel_state.init_distributed_environment(
                world_size=world_size,
                rank=rank,
                local_rank=rank,
                backend=dist.get_backend(),
            )
            try:
                parallel_state.initialize_model_parallel(1, 1, backend=dist.get_backend())
            except BaseException:
                # A communicator that rejects its backend name raises half-way: leave no groups behind.
                parallel_state.destroy_model_parallel()
                raise
        self.ep_group = parallel_state.get_ep_group()

    @property
    def ep_communicator(self) -> Any:
        """The EP group's device communicator: the one that owns the all2all manager."""
        return self.ep_group.device_communicator

    @contextlib.contextmanager
    def tokens_per_rank(self, sizes: list[int]) -> Iterator[None]:
        """A forward context whose dp_metadata says how many tokens each rank has, as a forward pass sets."""
        import torch
        from vllm.forward_context import DPMetadata, create_forward_context, override_forward_context

        metadata = DPMetadata(torch.tensor([int(size) for size in sizes], dtype=torch.int32))
        context = create_forward_context(None, self.config, dp_metadata=metadata)
        with override_forward_context(context), metadata.sp_local_sizes(sequence_parallel_size=1):
            yield

    def destroy(self) -> None:
        """Tear down the model-parallel groups; the world group wraps the plugin's group and stays."""
        from vllm.distributed import parallel_state

        parallel_state.destroy_model_parallel()
