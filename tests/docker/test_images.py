"""Image builds on a real engine: cached tags, and the cuda/xpu Dockerfiles refusing a wrong toolchain.

The cuda and xpu images cannot be built on these machines (no registry, no CUDA or XPU wheels), but their
Dockerfiles' own checks can be exercised: fed CPU torch, or a base without Intel's driver, each must fail
with a message that says what is wrong, never produce an image that would run cells without its device.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.errors import ConfigurationError
from harness.images import (
    LABEL_INSTALL_STAGE,
    OFFLINE_BASE_IMAGE,
    ImageBuildError,
    build_image,
    ensure_wheelhouse,
    find_image,
    recipe_for,
)
from harness.model import ImageSpec

pytestmark = pytest.mark.docker


def quiet(line: str) -> None:
    """Build logs are long; the failure message carries the tail that matters."""


def test_an_unchanged_image_is_not_rebuilt(docker_client: Any, cpu_image: str) -> None:
    outcome = build_image(docker_client, recipe_for("cpu"), offline=True, log=quiet)

    assert (outcome.tag, outcome.built) == (cpu_image, False)
    assert find_image(docker_client, cpu_image).labels["comm-harness.sources"].startswith("base=")
    stages = docker_client.images.list(filters={"label": f"{LABEL_INSTALL_STAGE}={cpu_image}"})
    assert stages == [], "the install stage's image should be removed after the build"


def test_cuda_image_refuses_a_cpu_torch(docker_client: Any, cpu_image: str) -> None:
    # The CPU image as the base: its venv already holds CPU torch, so pip has nothing to install and the
    # build reaches the Dockerfile's check in seconds, as a CPU wheel in a wheelhouse would after minutes.
    cpu_wheels = ensure_wheelhouse(recipe_for("cpu"), log=quiet)

    with pytest.raises(ImageBuildError) as failure:
        build_image(docker_client, recipe_for("cuda"), base_image=cpu_image, wheelhouse=cpu_wheels, log=quiet)

    assert "is not a CUDA build" in str(failure.value)
    assert "harness images build cuda" in str(failure.value)
    assert find_image(docker_client, recipe_for("cuda").tag) is None


def test_xpu_image_refuses_a_base_without_level_zero(docker_client: Any, cpu_image: str) -> None:
    no_driver_downloads = ImageSpec(dockerfile="docker/xpu.Dockerfile", build_args={"GPU_UMD_URLS": ""})
    recipe = recipe_for("xpu", no_driver_downloads)

    with pytest.raises(ImageBuildError, match="no Level Zero loader"):
        build_image(docker_client, recipe, base_image=OFFLINE_BASE_IMAGE, log=quiet)


def test_offline_xpu_build_needs_a_base_image_with_the_driver(docker_client: Any) -> None:
    with pytest.raises(ConfigurationError, match="pass --base-image"):
        build_image(docker_client, recipe_for("xpu"), offline=True, log=quiet)
