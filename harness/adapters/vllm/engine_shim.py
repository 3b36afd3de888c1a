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

from harness.common.contract import param_env

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


class VersionMismatch(UserWarning):
    """The vLLM installed is not the version the cell declared (its gaps and record are for that one)."""


def declared_version() -> str | None:
    """The vLLM version the cell declares: the matrix's `vllm` axis or setting (HARNESS_PARAM_VLLM), else
    COMM_HARNESS_VLLM_VERSION; None when nothing declares one."""
    return os.environ.get(param_env("vllm")) or os.environ.get("COMM_HARNESS_VLLM_VERSION") or None


def select_cpu_target() -> None:
    """Environment vLLM reads on import: pynccl off (it needs libnccl and a GPU; the lean install has neither,
    the full one has the library). The platform itself is set by `install_platform`, not by the environment:
    0.19/0.20 read VLLM_TARGET_DEVICE only when the wheel was built ("Failed to infer device type")."""
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    os.environ.setdefault("VLLM_DISABLE_PYNCCL", "1")


def install_platform(platform: str = "cpu") -> None:
    """Make vLLM's current platform a CPU platform that builds `platform`'s communicator class.

    Done in the pytest process before anything imports `vllm.config` (modules keep the platform object they
    imported), so no build-time device inference runs, then again on a rank to pick the emulated class. The
    platform differs from vLLM's CpuPlatform in two things only: the communicator class (an XPU or CUDA
    engine gets it from its own platform) and `check_and_update_config`, the engine's start-up check of a
    whole configuration (0.34.0: "vLLM on x86 CPUs requires Triton"), which no communicator reads.
    """
    import vllm.platforms as platforms

    current = platforms.__dict__.get("_current_platform")
    if current is None or not getattr(current, "comm_harness_test_platform", False):
        from vllm.platforms.cpu import CpuPlatform

        class CommunicatorTestPlatform(CpuPlatform):
            comm_harness_test_platform = True
            communicator_qualname = COMMUNICATOR_CLASSES["cpu"]

            @classmethod
            def get_device_communicator_cls(cls) -> str:
                return cls.communicator_qualname

            @classmethod
            def check_and_update_config(cls, vllm_config: Any) -> None:
                """Engine start-up checks and defaults of a whole config: not the communicators'."""

        current = CommunicatorTestPlatform()
        platforms._current_platform = current
        # A module attribute wins over the module's __getattr__, which would infer the platform again.
        platforms.current_platform = current
    type(current).communicator_qualname = COMMUNICATOR_CLASSES[platform]


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


def try_engine_config() -> None:
    """Build one rank's config in this process and leave its environment as it was: what fails here fails
    every test (0.34.0's start-up checks did, before `install_platform` left them out)."""
    saved = dict(os.environ)
    try:
        engine_config(0, 2, "allgather_reducescatter")
    finally:
        os.environ.clear()
        os.environ.update(saved)


def dp_metadata(sizes: list[int]) -> Any:
    """vLLM's DPMetadata for per-rank token counts `sizes`. Version shim: up to 0.19 it also takes the
    maximum as its first field (`DPMetadata(max_tokens_across_dp_cpu, num_tokens_across_dp_cpu)`)."""
    from vllm.forward_context import DPMetadata

    return dp_metadata_of(DPMetadata, sizes)


def dp_metadata_of(metadata_class: type, sizes: list[int]) -> Any:
    """`metadata_class(...)` for `sizes`, whichever of DPMetadata's two layouts the class has."""
    import dataclasses

    import torch

    counts = torch.tensor([int(size) for size in sizes], dtype=torch.int32)
    fields = {field.name for field in dataclasses.fields(metadata_class)}
    if "max_tokens_across_dp_cpu" in fields:
        return metadata_class(torch.max(counts), counts)
    return metadata_class(counts)


class ParallelState:
    """vLLM's world, DP and EP groups on this rank, built with `config` current, torn down by `destroy`."""

    def __init__(self, config: Any, platform: str, rank: int, world_size: int) -> None:
        import torch.distributed as dist
        from vllm.config import set_current_vllm_config
        from vllm.distributed import parallel_state

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
        from vllm.forward_context import create_forward_context, override_forward_context

        metadata = dp_metadata(sizes)
        context = create_forward_context(None, self.config, dp_metadata=metadata)
        with override_forward_context(context), metadata.sp_local_sizes(sequence_parallel_size=1):
            yield

    def destroy(self) -> None:
        """Tear down the model-parallel groups; the world group wraps the plugin's group and stays."""
        from vllm.distributed import parallel_state

        parallel_state.destroy_model_parallel()
