"""Image builds on a real engine: cached tags, a custom Dockerfile's context and packages, and the cuda/xpu
Dockerfiles refusing a wrong toolchain.

The xpu image cannot be built on these machines (no Intel base image, no XPU wheels) and the cuda image is
5 GB (tests/docker/test_cuda_image.py), but their Dockerfiles' own checks are exercised in seconds: fed CPU
torch, or a base without Intel's driver, each must fail with a message that says what is wrong, never
produce an image that would run cells without its device.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path
from typing import Any

import pytest

from harness.common.errors import ConfigurationError
from harness.config.model import ImageSpec
from harness.running.images import (
    LABEL_INSTALL_STAGE,
    OFFLINE_BASE_IMAGE,
    ImageBuildError,
    build_image,
    ensure_wheelhouse,
    find_image,
    recipe_for,
)

pytestmark = pytest.mark.docker


def quiet(line: str) -> None:
    """Build logs are long; the failure message carries the tail that matters."""


def test_an_unchanged_image_is_not_rebuilt(docker_client: Any, cpu_image: str) -> None:
    outcome = build_image(docker_client, recipe_for("cpu"), offline=True, log=quiet)

    assert (outcome.tag, outcome.built) == (cpu_image, False)
    assert find_image(docker_client, cpu_image).labels["comm-harness.sources"].startswith("base=")
    stages = docker_client.images.list(filters={"label": f"{LABEL_INSTALL_STAGE}={cpu_image}"})
    assert stages == [], "the install stage's image should be removed after the build"


@pytest.mark.e2e
def test_cuda_image_refuses_a_cpu_torch(docker_client: Any, cpu_image: str) -> None:
    # The CPU image as the base: its venv already holds CPU torch, so pip has nothing to install and the
    # build reaches the Dockerfile's check in seconds, as a CPU wheel in a wheelhouse would after minutes.
    cpu_wheels = ensure_wheelhouse(recipe_for("cpu"), log=quiet)
    # A real CUDA image may already carry the tag (tests/docker/test_cuda_image.py): it must stay as it was.
    before = find_image(docker_client, recipe_for("cuda").tag)

    with pytest.raises(ImageBuildError) as failure:
        build_image(docker_client, recipe_for("cuda"), base_image=cpu_image, wheelhouse=cpu_wheels, log=quiet)

    assert "is not a CUDA build" in str(failure.value)
    assert "harness images build cuda" in str(failure.value)
    after = find_image(docker_client, recipe_for("cuda").tag)
    assert (after and after.id) == (before and before.id)


def test_xpu_image_refuses_a_base_without_level_zero(docker_client: Any, cpu_image: str) -> None:
    no_driver_downloads = ImageSpec(dockerfile="docker/xpu.Dockerfile", build_args={"GPU_UMD_URLS": ""})
    recipe = recipe_for("xpu", no_driver_downloads)

    with pytest.raises(ImageBuildError, match="no Level Zero loader"):
        build_image(docker_client, recipe, base_image=OFFLINE_BASE_IMAGE, log=quiet)


def test_offline_xpu_build_needs_a_base_image_with_the_driver(docker_client: Any) -> None:
    with pytest.raises(ConfigurationError, match="pass --base-image"):
        build_image(docker_client, recipe_for("xpu"), offline=True, log=quiet)


# A Dockerfile of one's own, as a project that needs its files and packages in the image writes it.
CUSTOM_DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY data/greeting.txt /opt/greeting.txt
COPY .comm-harness/ /tmp/harness/
RUN pip install --no-cache-dir --no-index --find-links /tmp/harness/wheels -r /tmp/harness/requirements.txt
"""


def write_wheel(directory: Path, name: str, version: str, module_text: str) -> Path:
    """A minimal pure-Python wheel holding one module, `name`."""
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": module_text,
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{dist_info}/RECORD"] = "\n".join([*record, f"{dist_info}/RECORD,,"]) + "\n"
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


def test_a_custom_dockerfile_gets_its_context_and_the_matrix_packages(
    docker_client: Any, cpu_image: str, tmp_path: Path
) -> None:
    (tmp_path / "image" / "data").mkdir(parents=True)
    (tmp_path / "image" / "Dockerfile").write_text(CUSTOM_DOCKERFILE)
    (tmp_path / "image" / "data" / "greeting.txt").write_text("hello from the build context\n")
    (tmp_path / "wheels").mkdir()
    write_wheel(tmp_path / "wheels", "harness_probe", "1.0", "VALUE = 42\n")
    spec = ImageSpec(dockerfile="image/Dockerfile", packages=("harness_probe==1.0",), wheelhouse="wheels")
    recipe = recipe_for("cpu", spec, tmp_path)
    probe = (
        "import harness_probe, pathlib; "
        "print(harness_probe.VALUE, pathlib.Path('/opt/greeting.txt').read_text())"
    )

    build_image(docker_client, recipe, base_image=cpu_image, log=quiet)
    try:
        output = docker_client.containers.run(
            recipe.tag, ["python", "-c", probe], network_mode="none", remove=True
        )
    finally:
        docker_client.images.remove(recipe.tag)

    assert output.decode().strip() == "42 hello from the build context"


def test_torch_from_a_base_without_a_cuda_torch_fails_naming_the_base(
    docker_client: Any, cpu_image: str
) -> None:
    # image.torch: base keeps the base's torch; the CPU image's is a CPU build, so the check must refuse it
    # and say which base it came from (the harness's requirements are installed first, from the wheelhouse).
    cpu_wheels = ensure_wheelhouse(recipe_for("cpu"), log=quiet)
    before = find_image(docker_client, recipe_for("cuda").tag)

    with pytest.raises(ImageBuildError) as failure:
        build_image(
            docker_client,
            recipe_for("cuda"),
            base_image=cpu_image,
            wheelhouse=cpu_wheels,
            torch_from="base",
            log=quiet,
        )

    assert f"from base image {cpu_image} is not a CUDA build" in str(failure.value)
    after = find_image(docker_client, recipe_for("cuda").tag)
    assert (after and after.id) == (before and before.id)


def test_torch_from_base_is_refused_for_other_devices_and_needs_a_base(docker_client: Any) -> None:
    with pytest.raises(ConfigurationError, match="only the cuda image can take torch from its base"):
        recipe_for("cpu", ImageSpec(torch="base"))
    with pytest.raises(ConfigurationError, match="needs a base that holds a CUDA torch"):
        build_image(docker_client, recipe_for("cuda", ImageSpec(torch="base")), offline=True, log=quiet)


@pytest.mark.e2e
def test_a_host_environment_imported_as_a_base_runs_its_own_torch(tmp_path: Path, docker_client: Any) -> None:
    """`harness images import-host`: a venv of this host (its base's packages, torch among them, seen through
    --system-site-packages) becomes an image whose python3 imports that torch, with no registry."""
    import subprocess
    import sys

    from harness.running.containers import connect_engine
    from harness.running.images import import_host_environment

    venv = tmp_path / "host-env"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    tag = "comm-harness/test-host-environment:e2e"
    client = connect_engine(timeout_s=900)
    try:
        import_host_environment(client, tag, str(venv / "bin" / "python3"), log=quiet)
        output = client.containers.run(
            tag,
            ["python3", "-c", "import sys, torch; print(sys.prefix, torch.__version__)"],
            network_mode="none",
            remove=True,
        ).decode()
        image = client.images.get(tag)
    finally:
        if find_image(client, tag) is not None:
            client.images.remove(tag, force=True)
    import torch

    assert output.split() == [str(venv), torch.__version__]
    assert image.labels["comm-harness.host-environment"] == str(venv)
