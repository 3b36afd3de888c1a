"""The configuration a run is made of: cells, their images, Slurm placement and quarantine entries.

`matrix.py` loads and validates matrix.yaml into `Cell`s; nothing after it reads raw YAML. What becomes
of a cell is a result (harness/results/cell_result.py); how it runs is the executors' (running/executors/).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

Device = Literal["cpu", "cuda", "xpu"]

BACKEND_OF_DEVICE: dict[str, str] = {"cpu": "gloo", "cuda": "nccl", "xpu": "xccl"}


@dataclass(frozen=True)
class ImageSpec:
    """How to build the Docker image a cell runs in (paths relative to the matrix file's directory)."""

    # None: the device's own Dockerfile (docker/<device>.Dockerfile, shipped as harness/resources/docker/).
    dockerfile: str | None = None
    build_args: dict[str, str] = field(default_factory=dict)
    shm_size: str = "1g"
    network_host: bool = False
    # The container's memory limit (swap included), e.g. "8g"; None: no limit beyond the host's.
    memory: str | None = None
    pids_limit: int = 4096
    # The build context; None: the Dockerfile's directory.
    context: str | None = None
    # Extra Python packages for the image: requirement specifiers, requirements files, a directory of wheels.
    packages: tuple[str, ...] = ()
    requirements: tuple[str, ...] = ()
    wheelhouse: str | None = None
    # cuda: how a container gets its GPUs (harness/running/executors/gpu_access.py): "auto", "runtime",
    # "devices";
    # and, for "devices", the host folder holding the driver's libraries (None: the harness finds them).
    gpus: str = "auto"
    driver_dir: str | None = None
    # cuda: "wheels" installs torch (and the CUDA runtime and NCCL it brings) into the image; "base" keeps
    # the base image's own CUDA torch (NVIDIA's NGC images, or an image made from a GPU host's environment).
    torch: str = "wheels"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ImageSpec:
        data = dict(data)
        for key in ("packages", "requirements"):
            data[key] = tuple(data.get(key, ()))
        return cls(**data)


@dataclass(frozen=True)
class SlurmSpec:
    """How a cell is submitted to Slurm (harness/running/executors/slurm.py): the matrix's `slurm:`, with the
    command line's --slurm-* over it."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    sbatch_args: tuple[str, ...] = ()
    # A directory every node sees at the same path, where jobs write their results; None: --out itself.
    results_dir: str | None = None
    # Run each node's task in this image through the cluster's container support (pyxis/enroot); None: the
    # host's environment.
    container_image: str | None = None
    # The GRES that gives a node its GPUs (`--gres=<gres>:<ranks per node>`).
    gres: str = "gpu"

    def with_command_line(self, options: SlurmSpec) -> SlurmSpec:
        """These settings (the matrix's `slurm:`, or the defaults) with the command line's --slurm-* over
        them: each option given replaces the matrix's value, sbatch arguments add up, the GRES stays."""
        given = {
            f.name: value
            for f in dataclasses.fields(self)
            if f.name not in ("sbatch_args", "gres") and (value := getattr(options, f.name))
        }
        return dataclasses.replace(self, **given, sbatch_args=self.sbatch_args + options.sbatch_args)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SlurmSpec:
        data = dict(data)
        data["sbatch_args"] = tuple(data.get("sbatch_args", ()))
        return cls(**data)


@dataclass(frozen=True)
class QuarantineEntry:
    """A known-flaky test in matrix.yaml's `quarantine:`: it runs and is reported, and never fails a cell.

    `test` is a pytest node id or a pattern of one (harness/config/quarantine.py says how it matches)."""

    test: str
    reason: str
    issue: str
    # Where it was declared, for messages: "matrix.yaml:40".
    source: str = ""


@dataclass(frozen=True)
class Cell:
    """One point of the matrix: a device, a world size, and what to run there."""

    id: str
    device: Device
    backend: str
    # All ranks of the cell; they are split evenly over `nodes` (containers, or groups of one host's ranks).
    world_size: int
    tests: tuple[str, ...]
    pytest_args: tuple[str, ...] = ("--forked",)
    markers: str | None = None
    keyword: str | None = None
    # Further axes (e.g. {"all2all_backend": "naive"}); the cell runner hands each to the tests.
    params: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 1800.0
    test_timeout_s: float = 120.0
    required: bool = False
    # The plugin's --dist-check-collectives: a mismatched collective fails at once instead of hanging.
    check_collectives: bool = False
    # Cores the cell books in the scheduler; None: its world size on cpu, one core on a GPU.
    cores: int | None = None
    # The plugin's --dist-retries: a failed distributed test runs again on fresh ranks up to this many times.
    retries: int = 0
    # The plugin's --dist-repeat (harness run --repeat): every distributed test this many times, a flake hunt.
    repeat: int = 1
    image: ImageSpec | None = None
    # Where generated CI runs the cell: its device's CI keys as the matrix wrote them (schema-checked), keyed
    # by the matrix key (`runs_on`, `buildkite`, `gitlab`); each harness/ci/<system>.py reads its own.
    ci_placement: dict[str, Any] = field(default_factory=dict)
    # Where the cell was declared, for error messages: "matrix.yaml:12".
    source: str = ""
    nodes: int = 1
    # The device's `executor:` in the matrix ("" for none: the command line's choice) and its `slurm:`.
    executor: str = ""
    slurm: SlurmSpec | None = None
    # The matrix's `quarantine:`: failures of these tests are reported, and left out of the cell's verdict.
    quarantine: tuple[QuarantineEntry, ...] = ()

    @property
    def ranks_per_node(self) -> int:
        return self.world_size // self.nodes

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Cell:
        data = dict(data)
        image = data.pop("image", None)
        slurm = data.pop("slurm", None)
        data["quarantine"] = tuple(QuarantineEntry(**entry) for entry in data.get("quarantine", ()))
        for key in ("tests", "pytest_args"):
            data[key] = tuple(data.get(key, ()))
        return cls(
            image=ImageSpec.from_json(image) if image else None,
            slurm=SlurmSpec.from_json(slurm) if slurm else None,
            **data,
        )


# How the reason of a known gap's strict xfail begins: the plugin writes it (pytest_plugin/targets.py),
# reports tell a holding gap from a skip by it (harness/results/junit.py).
KNOWN_GAP_REASON = "known gap of "
