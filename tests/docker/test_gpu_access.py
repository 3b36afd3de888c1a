"""How a cuda cell's container gets its GPUs: the NVIDIA runtime, or device nodes and driver libraries passed
by the harness (harness/running/executors/gpu_access.py).

The option tests need no GPU and no engine: they build the options from a fake /dev and a fake driver folder.
The last test starts a real container with the options built for GPU 1 of a fake /dev (character devices
made with mknod, root only) and looks from inside: GPU 1's node is there, GPU 0's is not, the driver folder
is read-only, and the container stays unprivileged with every capability dropped.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from harness.common.contract import GPU_ACCESS_ENV
from harness.common.errors import ConfigurationError
from harness.config.model import Cell, ImageSpec
from harness.host.probe import HostCapabilities, NvidiaGpu
from harness.planning.plan import gpu_access_mode, plan_cells
from harness.running.executors.docker import confinement_options, device_options, with_image_library_path
from harness.running.executors.gpu_access import (
    CONTAINER_DRIVER_LIBS,
    device_nodes,
    devices_access,
    driver_mounts,
    gpu_access,
)


def fake_dev(root: Path, gpus: int, *, uvm_tools: bool = True, caps: int = 2) -> Path:
    dev = root / "dev"
    dev.mkdir()
    for name in [f"nvidia{index}" for index in range(gpus)] + ["nvidiactl", "nvidia-uvm"]:
        (dev / name).touch()
    if uvm_tools:
        (dev / "nvidia-uvm-tools").touch()
    if caps:
        (dev / "nvidia-caps").mkdir()
        for index in range(1, caps + 1):
            (dev / "nvidia-caps" / f"nvidia-cap{index}").touch()
    return dev


def fake_driver(root: Path, version: str = "580.95.05", leftover: str = "570.1.1") -> Path:
    """A library folder as a distribution lays the driver out: versioned files and their link names."""
    libs = root / "lib"
    libs.mkdir()
    for name in ("libcuda", "libnvidia-ml", "libnvidia-ptxjitcompiler", "libnvidia-nvvm"):
        (libs / f"{name}.so.{version}").write_bytes(b"ELF")
        (libs / f"{name}.so.1").symlink_to(f"{name}.so.{version}")
    (libs / "libcuda.so").symlink_to("libcuda.so.1")
    # An older driver's leftover and an unrelated library: neither belongs in the container.
    (libs / f"libnvidia-ml.so.{leftover}").write_bytes(b"ELF")
    (libs / "libz.so.1").write_bytes(b"ELF")
    return libs


def nodes_of(options: list[str]) -> list[str]:
    return [entry.split(":")[1] for entry in options]


@pytest.mark.parametrize("gpu_ids", [[0], [1, 2], [0, 1, 2, 3]])
def test_a_cell_gets_the_nodes_of_exactly_its_gpus_and_the_shared_ones(
    tmp_path: Path, gpu_ids: list[int]
) -> None:
    dev = fake_dev(tmp_path, gpus=4)

    nodes = nodes_of(device_nodes(gpu_ids, dev))

    assert [node for node in nodes if Path(node).name[len("nvidia") :].isdigit()] == [
        str(dev / f"nvidia{gpu}") for gpu in gpu_ids
    ]
    for other in set(range(4)) - set(gpu_ids):
        assert str(dev / f"nvidia{other}") not in nodes
    for shared in (
        "nvidiactl",
        "nvidia-uvm",
        "nvidia-uvm-tools",
        "nvidia-caps/nvidia-cap1",
        "nvidia-caps/nvidia-cap2",
    ):
        assert str(dev / shared) in nodes
    # Same path inside, read-write-mknod as the runtime gives them.
    assert all(
        entry.endswith(":rwm") and entry.split(":")[0] == entry.split(":")[1]
        for entry in device_nodes(gpu_ids, dev)
    )


def test_shared_nodes_a_driver_lacks_are_left_out_but_a_missing_gpu_or_nvidiactl_is_an_error(
    tmp_path: Path,
) -> None:
    dev = fake_dev(tmp_path, gpus=2, uvm_tools=False, caps=0)
    assert nodes_of(device_nodes([1], dev)) == [
        str(dev / "nvidia1"),
        str(dev / "nvidiactl"),
        str(dev / "nvidia-uvm"),
    ]

    with pytest.raises(ConfigurationError, match=r"GPU 3: .*nvidia3 does not exist"):
        device_nodes([3], dev)
    (dev / "nvidiactl").unlink()
    with pytest.raises(ConfigurationError, match="nvidiactl does not exist"):
        device_nodes([0], dev)


def test_driver_libraries_of_the_running_driver_are_mounted_under_every_name(tmp_path: Path) -> None:
    libs = fake_driver(tmp_path)

    mounts, source = driver_mounts(None, libs / "libcuda.so.1")

    targets = {Path(target).name: host for host, target in mounts.items()}
    assert all(target.startswith(CONTAINER_DRIVER_LIBS + "/") for target in mounts.values())
    for name in (
        "libcuda.so.1",
        "libcuda.so",
        "libcuda.so.580.95.05",
        "libnvidia-ml.so.1",
        "libnvidia-nvvm.so.1",
    ):
        assert name in targets
    # A mount cannot make a link: the link name is mounted from the link, which the engine resolves.
    assert Path(targets["libcuda.so.1"]).resolve() == libs / "libcuda.so.580.95.05"
    assert "libnvidia-ml.so.570.1.1" not in targets and "libz.so.1" not in targets
    assert "580.95.05" in source


def test_a_named_driver_folder_is_mounted_whole_and_must_hold_libcuda(tmp_path: Path) -> None:
    folder = tmp_path / "nvidia"
    (folder / "lib64").mkdir(parents=True)
    with pytest.raises(ConfigurationError, match="image.driver_dir .*no lib64/libcuda.so.1"):
        driver_mounts(str(folder), None)
    (folder / "lib64" / "libcuda.so.1").write_bytes(b"ELF")

    assert driver_mounts(str(folder), None)[0] == {str(folder): "/usr/local/nvidia"}
    with pytest.raises(ConfigurationError, match="no libcuda.so.1 on this host"):
        driver_mounts(None, None)


def test_auto_takes_the_runtime_only_where_the_engine_has_one() -> None:
    assert gpu_access_mode("auto", ["runc", "nvidia"]) == "runtime"
    assert gpu_access_mode("auto", ["runc"]) == "devices"
    assert gpu_access_mode("runtime", ["runc"]) == "runtime"
    assert gpu_access_mode("devices", ["nvidia", "runc"]) == "devices"
    with pytest.raises(ConfigurationError, match="image.gpus 'cdi'"):
        gpu_access_mode("cdi", [])


def cuda_cell(**image: Any) -> Cell:
    return Cell(
        id="cuda-nccl-ws2",
        device="cuda",
        backend="nccl",
        world_size=2,
        tests=("tests/communicators",),
        image=ImageSpec(dockerfile="docker/cuda.Dockerfile", **image),
    )


def test_devices_access_gives_nodes_and_read_only_libraries_and_no_device_request(tmp_path: Path) -> None:
    dev = fake_dev(tmp_path, gpus=2)
    libs = fake_driver(tmp_path)
    access = devices_access([1], None, dev=dev, libcuda=libs / "libcuda.so.1")

    options = {**confinement_options(cuda_cell()), **device_options(cuda_cell(), [1], access)}

    assert "device_requests" not in options
    assert str(dev / "nvidia0") not in nodes_of(options["devices"])
    assert all(mount["ReadOnly"] and mount["Type"] == "bind" for mount in options["mounts"])
    assert options["privileged"] is False and options["cap_drop"] == ["ALL"] and "cap_add" not in options
    assert access.env["LD_LIBRARY_PATH"].startswith(CONTAINER_DRIVER_LIBS)
    assert "devices" in access.env[GPU_ACCESS_ENV] and "GPUs 1" in access.env[GPU_ACCESS_ENV]


def test_runtime_access_is_a_device_request_for_the_cell_s_gpus() -> None:
    access = gpu_access("runtime", [2, 3], None, ["runc"])

    (request,) = access.create_options()["device_requests"]
    assert request["DeviceIDs"] == ["2", "3"] and "runtime" in access.env[GPU_ACCESS_ENV]


def test_the_image_s_own_library_path_is_kept_after_the_driver_s() -> None:
    class Image:
        attrs = {"Config": {"Env": ["PATH=/usr/bin", "LD_LIBRARY_PATH=/usr/local/cuda/lib64"]}}

    merged = with_image_library_path({"LD_LIBRARY_PATH": "/usr/local/nvidia/lib64"}, Image())
    assert merged["LD_LIBRARY_PATH"] == "/usr/local/nvidia/lib64:/usr/local/cuda/lib64"
    assert with_image_library_path({"A": "1"}, Image()) == {"A": "1"}


def test_the_plan_says_which_gpu_access_a_docker_cuda_cell_gets() -> None:
    gpus = tuple(NvidiaGpu(index, "H100", "580", "80 GiB") for index in range(2))
    torch = {"torch": "2.11", "torch_cuda": "13.0", "nccl_available": True, "gloo_available": True}

    def note(runtimes: tuple[str, ...], **image: Any) -> str:
        host = HostCapabilities(
            cores=16, nvidia_gpus=gpus, torch=torch, docker_available=True, docker_runtimes=runtimes
        )
        (planned,) = plan_cells([cuda_cell(**image)], host, "docker", lambda cell: (True, "image present"))
        return planned.reason

    assert "GPUs: devices" in note(("runc",)) and "no nvidia runtime" in note(("runc",))
    assert "GPUs: runtime" in note(("nvidia", "runc"))
    assert "GPUs: devices" in note(("nvidia", "runc"), gpus="devices")


@pytest.mark.docker
def test_a_container_given_gpu_1_sees_its_node_not_gpu_0_s_and_a_read_only_driver(
    tmp_path: Path, docker_client: Any, cpu_image: str
) -> None:
    if os.geteuid() != 0:
        pytest.skip("making character devices (mknod) needs root")
    dev = tmp_path / "dev"
    dev.mkdir()
    for name in ("nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm"):
        os.mknod(dev / name, 0o666 | 0o020000, os.makedev(1, 3))  # /dev/null's numbers: harmless to open
    driver = tmp_path / "nvidia"
    (driver / "lib64").mkdir(parents=True)
    (driver / "lib64" / "libcuda.so.1").write_bytes(b"ELF")
    access = devices_access([1], str(driver), dev=dev)
    cell = cuda_cell(shm_size="1g")
    script = (
        "import os; d='" + str(dev) + "'; "
        "print('gpu1', os.path.exists(d + '/nvidia1'), 'gpu0', os.path.exists(d + '/nvidia0'));"
        "open(d + '/nvidia1', 'w').write('x'); print('opened gpu1');"
        "print('caps', open('/proc/self/status').read().split('CapEff:')[1].split()[0]);"
        "print('ld', os.environ['LD_LIBRARY_PATH']);"
        "\ntry:\n    open('/usr/local/nvidia/lib64/libcuda.so.1', 'ab')"
        "\nexcept OSError as e:\n    print('driver', e.errno)"
    )
    options = device_options(cell, [1], access)
    container = docker_client.containers.create(
        cpu_image,
        ["python3", "-c", script],
        network_mode="none",
        environment=access.env,
        user=f"{os.getuid()}:{os.getgid()}",
        labels={"comm-harness": "1"},
        **confinement_options(cell),
        **options,
    )
    try:
        container.start()
        assert container.wait(timeout=120)["StatusCode"] == 0, container.logs().decode()
        output = container.logs().decode()
    finally:
        container.remove(force=True)

    assert "gpu1 True gpu0 False" in output and "opened gpu1" in output
    assert "caps 0000000000000000" in output
    assert "driver 30" in output  # EROFS: the driver's folder is read-only
    assert "ld /usr/local/nvidia/lib64" in output
