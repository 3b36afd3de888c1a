"""The probe (real where this host allows, faked where it cannot be had) and planning for faked hosts."""

from __future__ import annotations

import os
import stat
import sys

import pytest

from harness.common.errors import DockerUnavailableError
from harness.config.matrix import load_matrix
from harness.host.fingerprint import NvidiaGpu, query_nvidia_gpus
from harness.host.probe import HostCapabilities, count_cores, find_intel_render_nodes, probe_torch
from harness.planning.plan import plan_cells

CPU_TORCH = {"torch": "2.13.0+cpu", "torch_cuda": None, "gloo_available": True, "nccl_available": False}
CUDA_TORCH = {"torch": "2.11.0+cu130", "torch_cuda": "13.0", "gloo_available": True, "nccl_available": True}
XPU_TORCH = {
    "torch": "2.9.0+xpu",
    "gloo_available": True,
    "xccl_available": True,
    "xpu_available": True,
    "xpu_device_count": 2,
}

MATRIX = """
version: 1
defaults: {tests: [tests]}
devices:
  cpu: {world_sizes: [1, 4], image: {dockerfile: docker/cpu.Dockerfile}}
  cuda: {world_sizes: [1, 4, 8]}
  xpu: {world_sizes: [1, 4]}
"""


def gpus(count: int) -> tuple[NvidiaGpu, ...]:
    return tuple(NvidiaGpu(i, "NVIDIA H200", "570.1", "143771 MiB") for i in range(count))


def plan(
    project, host: HostCapabilities, choice="auto", image_check=None
) -> dict[str, tuple[str | None, str]]:
    cells = load_matrix(project(MATRIX)).cells
    return {p.cell.id: (p.executor, p.reason) for p in plan_cells(cells, host, choice, image_check)}


def test_host_without_gpu_or_docker_runs_cpu_locally_and_says_why_the_rest_is_skipped(project):
    host = HostCapabilities(cores=2, torch=CPU_TORCH, docker_reason="no Docker engine answers")
    fates = plan(project, host)
    assert fates["cpu-gloo-ws1"][0] == "local" and fates["cpu-gloo-ws4"][0] == "local"
    assert fates["cuda-nccl-ws1"] == (None, "needs 1 CUDA GPU, this host has 0")
    assert fates["cuda-nccl-ws8"] == (None, "needs 8 CUDA GPUs, this host has 0")
    assert fates["xpu-xccl-ws1"] == (None, "no Intel GPU on this host")


def test_four_gpu_host_runs_cuda_up_to_four(project):
    host = HostCapabilities(cores=64, nvidia_gpus=gpus(4), torch=CUDA_TORCH)
    fates = plan(project, host)
    assert fates["cuda-nccl-ws1"][0] == "local" and fates["cuda-nccl-ws4"][0] == "local"
    assert fates["cuda-nccl-ws8"] == (None, "needs 8 CUDA GPUs, this host has 4")


def test_gpus_with_a_cpu_build_of_torch_are_not_enough(project):
    host = HostCapabilities(cores=8, nvidia_gpus=gpus(8), torch=CPU_TORCH)
    assert plan(project, host)["cuda-nccl-ws1"] == (
        None,
        "torch 2.13.0+cpu on this host is a CPU build (no CUDA)",
    )


def test_intel_gpus_need_a_working_torch_xpu(project):
    nodes = ("/dev/dri/renderD128", "/dev/dri/renderD129")
    without_xpu = HostCapabilities(cores=8, intel_render_nodes=nodes, torch=CPU_TORCH)
    assert "torch.xpu is not available" in plan(project, without_xpu)["xpu-xccl-ws1"][1]
    with_xpu = HostCapabilities(cores=8, intel_render_nodes=nodes, torch=XPU_TORCH)
    fates = plan(project, with_xpu)
    assert fates["xpu-xccl-ws1"][0] == "local"
    assert fates["xpu-xccl-ws4"] == (None, "needs 4 Intel GPUs, this host has 2")


def test_auto_prefers_docker_when_the_image_is_present(project):
    host = HostCapabilities(cores=2, torch=CPU_TORCH, docker_available=True, docker_version="20.10")
    present = plan(project, host, image_check=lambda cell: (True, "comm-harness/cpu:abc present"))
    assert present["cpu-gloo-ws1"] == ("docker", "comm-harness/cpu:abc present")
    missing = plan(project, host, image_check=lambda cell: (False, "build it: harness images build cpu"))
    assert missing["cpu-gloo-ws1"][0] == "local" and "harness images build cpu" in missing["cpu-gloo-ws1"][1]
    # No image declared for cuda: the hardware decides, and this host has no GPU.
    assert present["cuda-nccl-ws1"] == (None, "needs 1 CUDA GPU, this host has 0")


def test_executor_docker_needs_an_engine_and_builds_missing_images(project):
    no_engine = HostCapabilities(cores=2, torch=CPU_TORCH, docker_reason="no Docker engine answers (refused)")
    with pytest.raises(DockerUnavailableError, match="no Docker engine answers"):
        plan(project, no_engine, choice="docker")
    engine = HostCapabilities(cores=2, torch=CPU_TORCH, docker_available=True)
    fates = plan(
        project, engine, choice="docker", image_check=lambda cell: (False, "tag comm-harness/cpu:abc")
    )
    assert fates["cpu-gloo-ws1"][0] == "docker" and "will be built" in fates["cpu-gloo-ws1"][1]
    assert fates["cuda-nccl-ws1"][0] is None


def test_executor_local_never_uses_docker(project):
    host = HostCapabilities(cores=2, torch=CPU_TORCH, docker_available=True)
    fates = plan(project, host, choice="local", image_check=lambda cell: (True, "present"))
    assert fates["cpu-gloo-ws4"] == ("local", "on the host")


def test_cores_follow_the_affinity_mask():
    assert count_cores() == len(os.sched_getaffinity(0))


def test_intel_render_nodes_are_told_apart_by_pci_vendor(tmp_path):
    dri, sysfs = tmp_path / "dri", tmp_path / "drm"
    dri.mkdir()
    for node, vendor in (("renderD128", "0x8086"), ("renderD129", "0x10de"), ("renderD130", "0x8086")):
        (dri / node).touch()
        (sysfs / node / "device").mkdir(parents=True)
        (sysfs / node / "device" / "vendor").write_text(vendor + "\n")
    (dri / "card0").touch()
    assert find_intel_render_nodes(dri, sysfs) == [str(dri / "renderD128"), str(dri / "renderD130")]


def test_nvidia_gpus_come_from_nvidia_smi(tmp_path, monkeypatch):
    fake = tmp_path / "nvidia-smi"
    fake.write_text(
        "#!/bin/sh\n"
        "echo '0, NVIDIA H200, 570.86.15, 143771 MiB'\n"
        "echo '1, NVIDIA H200, 570.86.15, 143771 MiB'\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    found, reason = query_nvidia_gpus()
    assert [g.index for g in found] == [0, 1] and found[0].driver_version == "570.86.15" and reason == ""


def test_a_failing_nvidia_smi_means_no_gpu_with_its_reason(tmp_path, monkeypatch):
    fake = tmp_path / "nvidia-smi"
    fake.write_text(
        "#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the driver' >&2\n"
        "exit 9\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    found, reason = query_nvidia_gpus()
    assert found == [] and "could not communicate with the driver" in reason


def test_torch_facts_come_from_a_subprocess_and_match_this_interpreter():
    import torch
    import torch.distributed as dist

    facts = probe_torch()
    assert facts["torch"] == torch.__version__
    assert facts["gloo_available"] == dist.is_gloo_available()
    assert facts["executable"] == sys.executable
