"""What a cell's container is given (environment, devices, mounts) and how image tags follow their inputs.

No engine needed: these check the options handed to the Docker SDK and the recipe hashing.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from harness.commands.cli import main as harness_main
from harness.common.errors import ConfigurationError, DockerUnavailableError
from harness.config.model import Cell, ImageSpec
from harness.host.probe import HostCapabilities
from harness.planning.plan import plan_cells
from harness.running.containers import connect_engine
from harness.running.executors.docker import (
    HARNESS_MOUNT,
    HARNESS_PACKAGE,
    REPO_MOUNT,
    UNPRIVILEGED_USER,
    DockerExecutor,
    closed_to,
    confinement_options,
    container_environment,
    container_name,
    container_user,
    device_options,
    memlock_limit,
    parse_size,
    project_mounts,
)
from harness.running.executors.docker_nodes import node_environment, store_port
from harness.running.images import OFFLINE_BASE_IMAGE, recipe_for

REPO_ROOT = Path(__file__).resolve().parents[2]


def make_cell(device: str = "cpu", shm_size: str = "1g", **overrides: object) -> Cell:
    fields: dict = {
        "id": f"{device}-ws2",
        "device": device,
        "backend": {"cpu": "gloo", "cuda": "nccl", "xpu": "xccl"}[device],
        "world_size": 2,
        "tests": ("tests/communicators",),
        "image": ImageSpec(dockerfile=f"docker/{device}.Dockerfile", shm_size=shm_size),
    }
    fields.update(overrides)
    return Cell(**fields)


def test_environment_passes_only_allow_listed_host_variables() -> None:
    host = {
        "NCCL_DEBUG": "INFO",
        "TORCH_DISTRIBUTED_DEBUG": "DETAIL",
        "NCCL_IB_HCA": "mlx5",
        "HARNESS_PARAM_EXTRA": "the harness sets its own",
        "HARNESS_RUN_ID": "not the host's",
        "AWS_SECRET_ACCESS_KEY": "never",
        "PATH": "/host/only/bin",
        "LD_PRELOAD": "/host/lib.so",
        "PYTHONPATH": "/host/site",
    }
    env = container_environment(make_cell(env={"OMP_NUM_THREADS": "1"}), [], host, run_id="run1")

    # The toolchains' knobs pass by prefix; the harness's own variables are set, never copied.
    assert env["NCCL_DEBUG"] == "INFO" and env["TORCH_DISTRIBUTED_DEBUG"] == "DETAIL"
    assert env["NCCL_IB_HCA"] == "mlx5"
    assert env["OMP_NUM_THREADS"] == "1"
    assert env["HARNESS_RUN_ID"] == "run1"
    for leaked in ("AWS_SECRET_ACCESS_KEY", "PATH", "HARNESS_PARAM_EXTRA", "LD_PRELOAD"):
        assert leaked not in env
    assert env["PYTHONPATH"] == f"{REPO_MOUNT}:{HARNESS_MOUNT}"


def test_matrix_env_overrides_the_host_but_not_the_harness_paths() -> None:
    env = container_environment(
        make_cell(env={"NCCL_DEBUG": "WARN", "PYTHONPATH": "/elsewhere"}), [], {"NCCL_DEBUG": "INFO"}
    )

    assert env["NCCL_DEBUG"] == "WARN"
    assert env["PYTHONPATH"].startswith(REPO_MOUNT)


def test_xpu_cell_is_masked_to_its_own_gpus() -> None:
    env = container_environment(make_cell("xpu"), [2, 3], {})
    options = device_options(make_cell("xpu"), [2, 3])

    assert env["ZE_AFFINITY_MASK"] == "2,3"
    assert options["devices"] == ["/dev/dri:/dev/dri:rwm"]
    assert "privileged" not in options


def test_cuda_cell_requests_exactly_its_gpus_with_memlock_and_enough_shm() -> None:
    options = device_options(make_cell("cuda", shm_size="256m"), [4, 5])

    (request,) = options["device_requests"]
    assert request["DeviceIDs"] == ["4", "5"]
    assert request["Capabilities"] == [["gpu"]]
    (memlock,) = options["ulimits"]
    # As much as the harness may lock itself (unlimited on GPU hosts; an engine refuses more than its own).
    limit = memlock_limit()
    assert (memlock["Name"], memlock["Soft"], memlock["Hard"]) == ("memlock", limit, limit)
    assert options["shm_size"] == "1g"  # NCCL fails on less
    assert device_options(make_cell("cuda", shm_size="8g"), [0, 1])["shm_size"] == "8g"
    assert "privileged" not in options


def test_cpu_cell_gets_its_shm_and_no_devices() -> None:
    options = device_options(make_cell("cpu", shm_size="2g"), [])

    assert options == {"shm_size": "2g"}


def test_every_container_is_confined_and_the_matrix_sets_its_memory() -> None:
    default = confinement_options(make_cell("cpu"))
    assert default["cap_drop"] == ["ALL"] and "cap_add" not in default
    assert default["security_opt"] == ["no-new-privileges"]
    assert default["pids_limit"] == 4096 and default["privileged"] is False
    assert "mem_limit" not in default
    limited = confinement_options(
        make_cell("cpu", image=ImageSpec(dockerfile="docker/cpu.Dockerfile", memory="8g", pids_limit=512))
    )
    assert limited["mem_limit"] == limited["memswap_limit"] == 8 << 30
    assert limited["pids_limit"] == 512


def test_cells_run_as_nobody_when_the_harness_is_root_and_as_its_user_otherwise() -> None:
    assert container_user(0, 0) == UNPRIVILEGED_USER == (65534, 65534)
    assert container_user(1000, 1001) == (1000, 1001)


def test_a_read_only_mount_closed_to_the_cells_user_is_named_with_the_fix(tmp_path: Path) -> None:
    project, results = tmp_path / "project", tmp_path / "results"
    project.mkdir(mode=0o700)
    results.mkdir(mode=0o700)
    mounts = project_mounts(project, results)
    owner = (project.stat().st_uid, project.stat().st_gid)

    reason = closed_to((owner[0] + 1, owner[1] + 1), mounts)

    assert reason.startswith(f"{project} (mode 700) is closed to uid {owner[0] + 1}")
    assert "chmod o+rx" in reason
    assert closed_to(owner, mounts) == ""  # its owner may, and results/ is handed over, not checked
    project.chmod(0o755)
    assert closed_to((owner[0] + 1, owner[1] + 1), mounts) == ""


def test_the_nodes_of_a_cell_meet_on_loopback_each_with_a_host_id_of_its_own() -> None:
    cell = make_cell("cuda", world_size=4, nodes=2)
    node0, node1 = (node_environment(cell, rank) for rank in (0, 1))

    for env in (node0, node1):
        assert (env["MASTER_ADDR"], env["MASTER_PORT"]) == ("127.0.0.1", "29500")
        assert env["GLOO_SOCKET_IFNAME"] == env["NCCL_SOCKET_IFNAME"] == "lo"
        assert (env["WORLD_SIZE"], env["LOCAL_WORLD_SIZE"]) == ("4", "2")
    assert (node0["NCCL_HOSTID"], node1["NCCL_HOSTID"]) == ("node0", "node1")
    assert (node0["HARNESS_NODE_RANK"], node1["HARNESS_NODE_RANK"]) == ("0", "1")
    # On the host's network (the matrix's network_host), the store takes a port that is free there.
    assert store_port(network_host=False) == 29500
    port = store_port(network_host=True)
    with socket.socket() as check:
        check.bind(("127.0.0.1", port))


def test_sizes_parse_like_docker_and_bad_ones_say_so() -> None:
    assert parse_size("512m") == 512 << 20
    assert parse_size("2g") == 2 << 30
    assert parse_size("4096") == 4096
    with pytest.raises(ConfigurationError, match="not a size"):
        parse_size("lots")


def test_harness_is_mounted_only_when_the_project_root_lacks_it(tmp_path: Path) -> None:
    in_repo = project_mounts(HARNESS_PACKAGE.parent, tmp_path)
    elsewhere = project_mounts(tmp_path / "project", tmp_path / "results")

    assert in_repo[str(HARNESS_PACKAGE.parent)] == {"bind": REPO_MOUNT, "mode": "ro"}
    assert in_repo[str(tmp_path)] == {"bind": "/results", "mode": "rw"}
    assert str(HARNESS_PACKAGE) not in in_repo
    assert elsewhere[str(HARNESS_PACKAGE)] == {"bind": f"{HARNESS_MOUNT}/harness", "mode": "ro"}


def test_container_names_are_valid_for_any_cell_id() -> None:
    assert container_name("abc123", "cpu-gloo-ws2[naive]") == "comm-harness-abc123-cpu-gloo-ws2_naive_"


def copy_image_context(tmp_path: Path) -> Path:
    shutil.copytree(REPO_ROOT / "docker", tmp_path / "docker")
    return tmp_path


def test_tag_follows_the_dockerfile_requirements_and_build_args(tmp_path: Path) -> None:
    root = copy_image_context(tmp_path)
    spec = ImageSpec(dockerfile="docker/cpu.Dockerfile")
    original = recipe_for("cpu", spec, root).tag

    assert recipe_for("cpu", spec, root).tag == original
    assert recipe_for("cpu", spec, REPO_ROOT).tag == original  # content, not location
    newer_torch = ImageSpec(dockerfile="docker/cpu.Dockerfile", build_args={"TORCH_VERSION": "2.14.0"})
    assert recipe_for("cpu", newer_torch, root).tag != original
    # Where the base image comes from is a build source, not part of what the image is.
    other_base = ImageSpec(dockerfile="docker/cpu.Dockerfile", build_args={"BASE_IMAGE": OFFLINE_BASE_IMAGE})
    assert recipe_for("cpu", other_base, root).tag == original

    requirements = root / "docker" / "requirements.txt"
    requirements.write_text(requirements.read_text() + "tabulate\n")
    changed_requirements = recipe_for("cpu", spec, root).tag
    assert changed_requirements != original
    dockerfile = root / "docker" / "cpu.Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "ENV EXTRA=1\n")
    assert recipe_for("cpu", spec, root).tag not in (original, changed_requirements)
    assert original.startswith("comm-harness/cpu:")


def test_a_missing_dockerfile_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        recipe_for("cpu", ImageSpec(dockerfile="docker/none.Dockerfile"), tmp_path)


def test_no_engine_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")

    with pytest.raises(DockerUnavailableError, match="no Docker engine answers"):
        connect_engine(timeout_s=2)
    answers, reason = DockerExecutor.engine_status()
    assert not answers and "docker-engine.sh" in reason


def test_images_build_rejects_an_unknown_device(capsys: pytest.CaptureFixture[str]) -> None:
    assert harness_main(["images", "build", "gpu"]) == 2
    assert "unknown device gpu; choose from cpu, cuda, xpu" in capsys.readouterr().err


def test_xpu_cells_plan_as_skipped_on_a_host_without_an_intel_gpu() -> None:
    host = HostCapabilities(cores=2, docker_available=True, docker_version="20.10")
    cells = [make_cell("xpu"), make_cell("cpu")]

    planned = plan_cells(cells, host, "docker", image_check=lambda cell: (True, "image present"))

    assert [(p.executor, p.reason) for p in planned] == [
        (None, "no Intel GPU on this host"),
        ("docker", "image present"),
    ]
