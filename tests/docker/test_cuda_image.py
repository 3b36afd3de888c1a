"""The CUDA image, built offline on a host without a GPU: a CUDA torch with NCCL, and the cpu side works.

The image is about 5 GB (PyPI's CUDA torch and its nvidia-* wheels). These tests use it when it is present;
with HARNESS_BUILD_CUDA_IMAGE=1 they build it first (`.ci/run` does that when its time allows), otherwise
they skip. Running CUDA cells needs GPUs and the NVIDIA container runtime, which these machines lack:
the DeviceRequest that gives a cell its GPUs is covered by tests/docker/test_container_options.py.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.config.model import Cell, ImageSpec
from harness.running.executors.docker import DockerExecutor
from harness.running.images import DEVICE_IMAGES, build_image, find_image, recipe_for

pytestmark = [pytest.mark.docker, pytest.mark.cuda_image, pytest.mark.e2e]

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_ENV = "HARNESS_BUILD_CUDA_IMAGE"
TOOLCHAIN_PROBE = """
import json, torch, torch.distributed as dist
print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda,
                  "nccl_available": dist.is_nccl_available(), "nccl": list(torch.cuda.nccl.version())}))
"""


@pytest.fixture(scope="module")
def cuda_image(docker_client: Any) -> str:
    """The CUDA image's tag: present, or built offline when HARNESS_BUILD_CUDA_IMAGE=1, else a skip."""
    recipe = recipe_for("cuda", repo_root=REPO_ROOT)
    if find_image(docker_client, recipe.tag) is None:
        if os.environ.get(BUILD_ENV) != "1":
            pytest.skip(
                f"{recipe.tag} (about 5 GB) is not built: "
                f"`harness images build cuda --offline` builds it, or set {BUILD_ENV}=1"
            )
        build_image(docker_client, recipe, offline=True, log=lambda _: None)
    return recipe.tag


def test_the_cuda_image_holds_a_cuda_torch_with_nccl(docker_client: Any, cuda_image: str) -> None:
    output = docker_client.containers.run(
        cuda_image, ["python", "-c", TOOLCHAIN_PROBE], network_mode="none", remove=True
    )
    facts = json.loads(output.decode().strip().splitlines()[-1])

    assert facts["torch"].startswith(DEVICE_IMAGES["cuda"].build_args["TORCH_VERSION"])
    assert facts["cuda"] and facts["nccl_available"]
    assert len(facts["nccl"]) == 3 and facts["nccl"][0] >= 2


@pytest.fixture
def cpu_side_of_the_cuda_image(docker_client: Any, cuda_image: str) -> Iterator[ImageSpec]:
    """An `image:` for cpu cells that is the CUDA image: the same recipe, only the name's device differs."""
    spec = ImageSpec(dockerfile="docker/cuda.Dockerfile", build_args=DEVICE_IMAGES["cuda"].build_args)
    cpu_tag = recipe_for("cpu", spec, REPO_ROOT).tag
    assert cpu_tag.split(":")[1] == cuda_image.split(":")[1], "the same recipe must hash the same"
    repository, tag = cpu_tag.split(":")
    docker_client.images.get(cuda_image).tag(repository, tag)
    yield spec
    docker_client.images.remove(cpu_tag)  # only the extra name: the CUDA image keeps its own


def test_the_cpu_side_of_the_suite_passes_in_the_cuda_image_and_its_fingerprint_names_cuda_and_nccl(
    docker_client: Any, cpu_side_of_the_cuda_image: ImageSpec, tmp_path: Path
) -> None:
    cell = Cell(
        id="cpu-gloo-ws2-in-cuda-image",
        device="cpu",
        backend="gloo",
        world_size=2,
        tests=("tests/communicators",),
        image=cpu_side_of_the_cuda_image,
        env={"OMP_NUM_THREADS": "1"},
    )
    with DockerExecutor(REPO_ROOT, offline=True, client=docker_client) as executor:
        result = executor.run(cell, tmp_path / cell.id, [], lambda cell_id, event: None)

    assert result.status == "passed", result.reason
    assert result.counts.passed > 0 and result.counts.failed == 0
    assert result.fingerprint["torch_cuda"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", result.fingerprint["nccl"] or "")
