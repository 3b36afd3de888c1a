"""The data that flows from the matrix to the executors and back: cells, their results, the executor protocol.

The layers: `matrix.py` loads and validates matrix.yaml into `Cell`s; `plan.py` decides, per cell, which
executor runs it here or why it is skipped; an executor (`executors/local.py`, `executors/docker.py`) runs
one cell through `python -m harness.cell.runner` and returns a `CellResult`; `report.py` writes results.
Nothing after `matrix.py` reads raw YAML.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from harness.common.progress_events import ProgressCallback

Device = Literal["cpu", "cuda", "xpu"]
# incomplete: the cell's directory has no completion record (its run was killed); an error, never a pass.
CellStatus = Literal["passed", "failed", "skipped", "error", "incomplete"]
# A required cell in one of these did not run to a verdict: `--strict` fails the run.
NOT_RUN_STATUSES = ("skipped", "error", "incomplete")
# A cell in one of these fails the run (exit 1).
FAILING_STATUSES = ("failed", "error", "incomplete")

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
    # cuda: how a container gets its GPUs (harness/running/executors/gpu_access.py): "auto", "runtime", "devices";
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
    runs_on: tuple[str, ...] = ()
    # Where the cell runs on Buildkite (agent tags, e.g. {"queue": "gpu"}) and on GitLab CI (runner tags).
    buildkite_agents: dict[str, str] = field(default_factory=dict)
    gitlab_tags: tuple[str, ...] = ()
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
        for key in ("tests", "pytest_args", "runs_on", "gitlab_tags"):
            data[key] = tuple(data.get(key, ()))
        return cls(
            image=ImageSpec.from_json(image) if image else None,
            slurm=SlurmSpec.from_json(slurm) if slurm else None,
            **data,
        )


# How the reason of a known gap's strict xfail begins: the plugin writes it (pytest_plugin/targets.py),
# reports tell a holding gap from a skip by it (results_dir/junit.py).
KNOWN_GAP_REASON = "known gap of "


@dataclass
class TestCounts:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    errors: int = 0
    # Of the passed: those that failed an attempt first (or some of their repeats), a warning not a failure.
    flaky: int = 0
    # Failed or errored, and quarantined: counted here, not in failed/errors, so the cell can still pass.
    quarantined: int = 0
    # Collected but never finished: the cell was stopped (timeout, Ctrl-C) or died before them.
    not_run: int = 0
    # Strict xfails of a recorded known gap that holds (not in `skipped`, where JUnit counts them).
    known_gaps: int = 0

    @property
    def total(self) -> int:
        return (
            self.passed + self.failed + self.skipped + self.errors + self.quarantined + self.known_gaps
        )


@dataclass
class CellResult:
    """What became of one cell; `summary.json` holds one of these per cell."""

    id: str
    device: str
    world_size: int
    status: CellStatus
    reason: str = ""
    executor: str = ""
    counts: TestCounts = field(default_factory=TestCounts)
    duration_s: float = 0.0
    results_dir: str = ""
    fingerprint: dict[str, Any] = field(default_factory=dict)
    required: bool = False
    backend: str = ""
    params: dict[str, str] = field(default_factory=dict)
    # Where the cell was declared ("matrix.yaml:12").
    source: str = ""
    nodes: int = 1
    # Per quarantine entry that matched a test of the cell (harness/config/quarantine.py `QuarantineTally`):
    # {"test", "reason", "issue", "source", "ran", "failed", "failures": [{"test", "summary"}, ...]}.
    quarantine: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of_cell(cls, cell: Cell, status: CellStatus, reason: str = "", **fields: Any) -> CellResult:
        """The result of `cell`, with the identity fields taken from it (duration rounded to ms)."""
        if "duration_s" in fields:
            fields["duration_s"] = round(fields["duration_s"], 3)
        return cls(
            id=cell.id,
            device=cell.device,
            world_size=cell.world_size,
            status=status,
            reason=reason,
            required=cell.required,
            backend=cell.backend,
            params=dict(cell.params),
            source=cell.source,
            nodes=cell.nodes,
            **fields,
        )

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CellResult:
        """The result `to_json` wrote; TypeError or ValueError when `data` is not one."""
        data = dict(data)
        data["counts"] = TestCounts(**data.get("counts", {}))
        names = {f.name for f in dataclasses.fields(cls)}
        result = cls(**{k: v for k, v in data.items() if k in names})
        if result.status not in ("passed", "failed", "skipped", "error", "incomplete"):
            raise ValueError(f"unknown status {result.status!r}")
        return result


class Executor(Protocol):
    """Runs one cell to completion and never leaves a process or container behind."""

    name: str

    def run(
        self,
        cell: Cell,
        results_dir: Path,
        gpu_ids: list[int],
        on_progress: ProgressCallback,
    ) -> CellResult: ...

    def interrupt(self) -> None:
        """Stop every running cell at once (Ctrl-C); their results say "interrupted"."""

    def close(self) -> None:
        """Stop anything still running and release what the executor holds (containers, ...)."""
