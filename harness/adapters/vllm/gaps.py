"""Where vLLM 0.33.0's communicators differ from the conformance suite, as measured (see qualification/).

Each entry becomes a strict xfail: the cell passes while vLLM behaves exactly so, and fails when it is fixed
(XPASS) or fails differently (`match` no longer found in the failure). `test` matches the test's name without
its platform id; the first entry that applies wins, so narrower patterns come first. Platforms are ids:
cpu (vLLM's CpuCommunicator), xpu_emulated and cuda_emulated (its XpuCommunicator and CudaCommunicator on
cpu/gloo; CUDA with pynccl off, as on a host without GPUs). On emulated platforms a failure inside gloo may
be an artefact of the emulation: the reason says so where NCCL or xccl would accept the call.
"""

from __future__ import annotations

from harness.adapters.base import KnownGap

CPU, XPU, CUDA = "cpu", "xpu_emulated", "cuda_emulated"
ALL = (CPU, XPU, CUDA)

_NO_PYNCCL = "with pynccl off (no GPU) CudaCommunicator"
_CPU_LACKS_V = "CpuCommunicator has no all_gatherv/reduce_scatterv (NotImplementedError; vLLM #57837)"
_XPU_GATHER_LISTS = (
    "XpuCommunicator.all_gatherv hands dist.all_gather one output per rank size (uneven) or a single "
    "output (equal sizes), which gloo rejects; xccl's all_gather may accept them (no Intel GPU here)"
)
_MOVEDIM = "`input_.movedim(0, dim)` moves the wrong axis for dim >= 2 (movedim(dim, 0) is meant)"

# The suite's tests that call all_gather and all_gatherv together (the first fails here on all_gatherv).
_ALL_GATHER_WITH_V = (
    "test_all_gather_and_all_gatherv_concatenate_in_rank_order",
    "test_all_gather_defaults_to_the_last_dim_and_all_gatherv_to_dim_0",
)

KNOWN_GAPS: tuple[KnownGap, ...] = (
    # Found by the property tests and the documented promises (issue #16's suite), on vLLM's own code.
    KnownGap(
        "test_all_reduce_sums_every_rank_in_place",
        (CPU,),
        "all_reduce of a non-contiguous (strided) tensor returns wrong sums on CPU, without an error: "
        "CpuCommunicator passes the strided view to torch.distributed.all_reduce as is, and gloo (torch "
        "2.13) reduces it wrongly",
        match=r"all_reduce: \d+ of \d+ values differ",
    ),
    KnownGap(
        "test_all_reduce_*in_place",
        (XPU, CUDA),
        "all_reduce returns the sum in a new tensor and leaves a contiguous input as it was (CpuCommunicator "
        "sums in place; the suite's documented promise is in place)",
        match=r"all_reduce's contiguous input afterwards|all_reduce returned a new tensor for a contiguous",
    ),
    KnownGap(
        "test_broadcast_gives_every_rank_the_src_tensor",
        (CPU,),
        "broadcast of a non-contiguous (strided) tensor leaves wrong values on the receiving ranks, without "
        "an error: the base class passes the strided view to torch.distributed.broadcast as is (gloo)",
        match=r"broadcast from \d+: \d+ of \d+ values differ",
    ),
    KnownGap(
        "test_send_recv_deliver_to_the_peer",
        ALL,
        "send of a non-contiguous tensor raises 'input tensor has to be contiguous' on the sender, so the "
        "receiver waits in recv until the test's timeout (the desync verdict names it)",
        match=r"is in recv from rank \d+|input tensor has to be contiguous",
    ),
    *(
        KnownGap(name, platforms, f"all_gatherv: {reason}", match=match)
        for name in _ALL_GATHER_WITH_V
        for platforms, reason, match in (
            ((CPU,), _CPU_LACKS_V, "NotImplementedError"),
            ((XPU,), _XPU_GATHER_LISTS, r"ProcessGroupGloo::allgather: invalid"),
            ((CUDA,), f"{_NO_PYNCCL} asserts a PyNCCL communicator", r"assert pynccl_comm is not None"),
        )
    ),
    KnownGap(
        "test_an_empty_list_gathers_to_an_empty_list",
        (CUDA,),
        f"all_gatherv([]): {_NO_PYNCCL} asserts a PyNCCL communicator",
        match=r"assert pynccl_comm is not None",
    ),
    KnownGap(
        "test_reduce_scatter_and_reduce_scatterv_give_each_rank_its_share_of_the_sum",
        (CPU,),
        f"reduce_scatterv: {_CPU_LACKS_V}; reduce_scatter along dim 2 of a 3-D tensor: {_MOVEDIM}",
        match=r"NotImplementedError|reduce_scatter\b.*shape",
    ),
    KnownGap(
        "test_reduce_scatter_and_reduce_scatterv_give_each_rank_its_share_of_the_sum",
        (XPU,),
        f"reduce_scatterv along the last dim: {_MOVEDIM}, which trips `assert input_tensor.shape[0] == "
        "sum(sizes)`",
        match=r"assert input_tensor.shape\[0\] == sum\(sizes\)|reduce_scatter\b.*shape",
    ),
    KnownGap(
        "test_reduce_scatter_and_reduce_scatterv_give_each_rank_its_share_of_the_sum",
        (CUDA,),
        f"reduce_scatterv: {_NO_PYNCCL} asserts 'reduce_scatterv requires PyNccl'; reduce_scatter returns "
        "uninitialised memory, without an error",
        match=r"reduce_scatterv requires PyNccl|values differ",
    ),
    KnownGap(
        "test_reduce_scatter_and_reduce_scatterv_default_to_the_last_dim",
        (CPU,),
        f"reduce_scatterv: {_CPU_LACKS_V}",
        match="NotImplementedError",
    ),
    KnownGap(
        "test_reduce_scatter_and_reduce_scatterv_default_to_the_last_dim",
        (CUDA,),
        f"reduce_scatter: {_NO_PYNCCL} returns uninitialised memory, without an error",
        match=r"reduce_scatter: \d+ of \d+ values differ",
    ),
    KnownGap(
        "test_all_gatherv_of_a_list_gathers_each_tensor",
        (XPU,),
        "all_gatherv of a list along the last dim: NotImplementedError('only dim 0 all-gatherv is "
        f"supported'); along dim 0: {_XPU_GATHER_LISTS}",
        match=r"only dim 0 all-gatherv is supported|ProcessGroupGloo::allgather: invalid",
    ),
    KnownGap(
        "test_an_empty_list_gathers_to_an_empty_list",
        (CPU,),
        f"all_gatherv([]): {_CPU_LACKS_V}",
        match="NotImplementedError",
    ),
    KnownGap(
        "test_peers_outside_the_group_are_refused_before_any_collective",
        (CPU, CUDA),
        "gather with a dst outside the group raises IndexError (it indexes the group's rank list) instead "
        "of a ValueError naming the peer",
        match=r"IndexError: list index out of range",
    ),
    KnownGap(
        "test_peers_outside_the_group_are_refused_before_any_collective",
        (XPU,),
        "gather with a dst outside the group reaches the collective before any check (XpuCommunicator "
        "all-gathers first; gloo rejects its stacked output)",
        match=r"ProcessGroupGloo::allgather: invalid",
    ),
    KnownGap(
        "test_combine_returns_each_rank_its_own_tokens_summed",
        (CPU,),
        f"combine: the AgRs manager combines with reduce_scatterv, but {_CPU_LACKS_V}",
        match="NotImplementedError",
    ),
    KnownGap(
        "test_combine_returns_each_rank_its_own_tokens_summed",
        (CUDA,),
        f"combine: {_NO_PYNCCL}.reduce_scatterv asserts 'reduce_scatterv requires PyNccl'",
        match="reduce_scatterv requires PyNccl",
    ),
    # dispatch / combine: the AgRs manager gathers with all_gatherv and combines with reduce_scatterv.
    KnownGap(
        "test_dispatch*",
        (CPU,),
        f"dispatch/combine: the AgRs manager gathers and combines with them, but {_CPU_LACKS_V}",
        match="NotImplementedError",
    ),
    KnownGap(
        "test_dispatch*",
        (XPU,),
        f"dispatch: {_XPU_GATHER_LISTS}",
        match=r"ProcessGroupGloo::allgather: invalid",
    ),
    KnownGap(
        "test_dispatch*",
        (CUDA,),
        f"dispatch: {_NO_PYNCCL}.all_gatherv asserts a PyNCCL communicator",
        match=r"assert pynccl_comm is not None",
    ),
    # all_gatherv
    KnownGap("test_all_gatherv*", (CPU,), f"all_gatherv: {_CPU_LACKS_V}", match="NotImplementedError"),
    KnownGap(
        "test_all_gatherv_of_a_list_gathers_each_tensor[[]-1-*",
        (XPU, CUDA),
        "all_gatherv along the last dim: NotImplementedError('only dim 0 all-gatherv is supported')",
        match="only dim 0 all-gatherv is supported",
    ),
    KnownGap(
        "test_all_gatherv*",
        (XPU,),
        f"all_gatherv: {_XPU_GATHER_LISTS}",
        match=r"ProcessGroupGloo::allgather: invalid",
    ),
    KnownGap(
        "test_all_gatherv*",
        (CUDA,),
        f"all_gatherv: {_NO_PYNCCL} asserts a PyNCCL communicator",
        match=r"assert pynccl_comm is not None",
    ),
    # reduce_scatter / reduce_scatterv
    KnownGap(
        "test_reduce_scatter_equal_sizes",
        (CPU, XPU),
        f"reduce_scatter along dim 2 of a 3-D tensor returns the wrong shape: {_MOVEDIM}; dims 0 and 1 pass",
        match=r"dim=-1 \w+(-\w+)?: shape \(",
    ),
    KnownGap(
        "test_reduce_scatter_equal_sizes",
        (CUDA,),
        f"reduce_scatter: {_NO_PYNCCL} returns uninitialised memory, without an error",
        match="Tensor-likes are not close",
    ),
    KnownGap(
        "test_reduce_scatterv*", (CPU,), f"reduce_scatterv: {_CPU_LACKS_V}", match="NotImplementedError"
    ),
    KnownGap(
        "test_reduce_scatterv*",
        (XPU,),
        f"reduce_scatterv along dim 2 of a 3-D tensor: {_MOVEDIM}, which trips "
        "`assert input_tensor.shape[0] == sum(sizes)`; dims 0 and 1 (padded uneven path) pass before it",
        match=r"assert input_tensor.shape\[0\] == sum\(sizes\)",
    ),
    KnownGap(
        "test_reduce_scatterv*",
        (CUDA,),
        f"reduce_scatterv: {_NO_PYNCCL} asserts 'reduce_scatterv requires PyNccl'",
        match="reduce_scatterv requires PyNccl",
    ),
    # gather, broadcast, send/recv, barrier
    KnownGap(
        "test_gather_*",
        (XPU,),
        "gather: XpuCommunicator all-gathers into a stacked (world_size, *shape) output, which gloo's "
        "all_gather_single rejects (NCCL accepts the stacked form; an emulation artefact, perhaps)",
        match=r"ProcessGroupGloo::allgather: invalid tensor size",
    ),
    KnownGap(
        "test_broadcast_*",
        (XPU,),
        "broadcast returns None (XpuCommunicator.broadcast is typed -> None; the others return the tensor)",
        match="'NoneType' object has no attribute",
    ),
    KnownGap(
        "test_broadcast_*",
        (CUDA,),
        f"broadcast: {_NO_PYNCCL} raises 'No PyNCCL communicator found'",
        match="No PyNCCL communicator found",
    ),
    KnownGap(
        "test_send_recv_*",
        ALL,
        "send of a non-contiguous tensor raises 'input tensor has to be contiguous': vLLM hands it to "
        "torch.distributed.send as is",
        match="input tensor has to be contiguous",
    ),
    KnownGap(
        "test_barrier_*",
        ALL,
        "no barrier() on vLLM's device communicators (its GroupCoordinator.barrier uses the cpu group)",
        match="has no attribute 'barrier'",
    ),
    # input checks: wrong sizes reach the backend instead of a ValueError before any collective
    KnownGap(
        "test_bad_sizes_and_shapes_raise_before_any_collective",
        (CPU,),
        "input checks: the first check calls all_gatherv, which CpuCommunicator lacks (vLLM #57837)",
        match="NotImplementedError",
    ),
    KnownGap(
        "test_bad_sizes_and_shapes_raise_before_any_collective",
        (XPU,),
        "input checks: all_gatherv with one size too many reaches gloo instead of raising ValueError",
        match=r"ProcessGroupGloo::allgather: invalid",
    ),
    KnownGap(
        "test_bad_sizes_and_shapes_raise_before_any_collective",
        (CUDA,),
        f"input checks: {_NO_PYNCCL}.all_gatherv asserts a PyNCCL communicator before checking sizes",
        match=r"assert pynccl_comm is not None",
    ),
    # all2all backend names, as the communicators read them from parallel_config.all2all_backend
    KnownGap(
        "test_a_known_name_runs_the_backend_the_rule_names[[]naive]",
        ALL,
        "'naive' runs the AgRs manager but all2all_backend reports 'naive' (only ParallelConfig's "
        "constructor rewrites the alias; the communicators accept it literally)",
        match="'naive' reported",
    ),
    KnownGap(
        "test_a_known_name_runs_the_backend_the_rule_names[[]pplx]",
        (CPU, XPU),
        "'pplx' (removed) falls back to AgRs with a log warning, but all2all_backend reports 'pplx'",
        match="'pplx' reported",
    ),
    KnownGap(
        "test_a_known_name_runs_the_backend_the_rule_names[[]pplx]",
        (CUDA,),
        "'pplx' (removed) raises ValueError('Unknown all2all backend: pplx') in CudaCommunicator, where "
        "cpu and xpu fall back",
        match="Unknown all2all backend: pplx",
    ),
    KnownGap(
        "test_a_known_name_runs_the_backend_the_rule_names[[]deepep_low_latency]",
        (CPU, XPU),
        "a backend the platform lacks ('deepep_low_latency') runs AgRs with a log warning, but "
        "all2all_backend reports the name asked for",
        match="'deepep_low_latency' reported",
    ),
    KnownGap(
        "test_a_known_name_runs_the_backend_the_rule_names[[]deepep_low_latency]",
        (CUDA,),
        "a CUDA backend whose library is missing raises ('DeepEP kernels not found') instead of falling "
        "back to allgather_reducescatter",
        match="DeepEP kernels not found",
    ),
    KnownGap(
        "test_an_unknown_name_is_a_value_error",
        (CPU, XPU),
        "an unknown backend name runs AgRs with a log warning instead of a ValueError (CudaCommunicator "
        "raises one)",
        match="DID NOT RAISE",
    ),
)
