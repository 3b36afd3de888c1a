"""What every CI system's fan-out shares: one job per cell, what it runs and keeps, and the report job.

The systems differ only in syntax. A cell job installs the harness from where the matrix's `harness:` says
(a requirement, a wheel, a git URL; by default this version from the package index, or the checkout when the
repository is the harness's own), then the project (the matrix's project directory, when it is a Python
project: in an engine's repository, the engine and the adapter it registers), builds its device's image
(nothing to do when its content-hash tag is present) and runs `harness run MATRIX --cell ID --executor docker
--out results/ID`; that directory is kept as the job's artifact. The report job gathers every cell's directory
under results/ and merges them with `harness report results --strict`.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from harness.common.errors import ConfigurationError
from harness.config.matrix import Matrix
from harness.config.model import Cell
from harness.host.checkout import HARNESS_DISTRIBUTION, harness_version
from harness.running.images import DEVICE_IMAGES, ImageRecipe, recipe_for

RESULTS_DIR = "results"
REPORT_DIR = "report"
# Every job's environment: pip quiet about its own version, Python's output unbuffered in the live log.
JOB_ENV = {"PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONUNBUFFERED": "1"}


PYTHON_PROJECT_FILES = ("pyproject.toml", "setup.py")


def is_harness_checkout(directory: Path) -> bool:
    """Whether `directory` is the harness's own repository (its pyproject and package)."""
    return (directory / "harness" / "cli.py").is_file() and (directory / "pyproject.toml").is_file()


def job_path(path: Path, start: Path | None = None) -> str:
    """`path` as a job names it: relative to the repository root the job starts in (the working directory
    where the pipeline is written), in POSIX form; './' for a local path pip must not read as a name."""
    relative = Path(os.path.relpath(path.resolve(), (start or Path.cwd()).resolve())).as_posix()
    return relative if relative.startswith(("../", "./")) or relative == "." else f"./{relative}"


def package_installs(matrix: Matrix, start: Path | None = None) -> list[str]:
    """The `pip install` arguments of a job, in order: the harness (`harness:`), then the project."""
    project = matrix.project_root
    spec = matrix.harness
    if spec is None:
        if is_harness_checkout(project):
            return [f"-e {shlex.quote(job_path(project, start))}"]
        spec = f"{HARNESS_DISTRIBUTION}=={harness_version()}"
    elif spec.endswith(".whl") and "://" not in spec:
        wheel = matrix.root / spec
        if not wheel.is_file():
            raise ConfigurationError(
                f"{matrix.path}: harness: wheel '{spec}' does not exist (relative to {matrix.root}); "
                "build it first (python -m build --wheel) or name a requirement such as comm-harness==VERSION"
            )
        spec = job_path(wheel, start)
    installs = [shlex.quote(spec)]
    if any((project / name).is_file() for name in PYTHON_PROJECT_FILES):
        installs.append(f"-e {shlex.quote(job_path(project, start))}")
    return installs


def install_commands(torch_version: str, torch_index_url: str, installs: Iterable[str]) -> list[str]:
    """A virtual environment with this torch, the harness and the project: agents and shell runners share
    their Python.

    pip installs torch first, from its own index, so that pyproject's range is met and no other build of
    torch (a multi-GB CUDA one on a CPU host) is downloaded.
    """
    torch = shlex.quote(f"torch=={torch_version}")
    return [
        "python3 -m venv .venv",
        ". .venv/bin/activate",
        f"python -m pip install {torch} --index-url {shlex.quote(torch_index_url)}",
        *(f"python -m pip install {words}" for words in installs),
    ]


def artifact_name(cell_id: str) -> str:
    """The artifact a cell job keeps its results directory as (unique per cell, as GitHub requires)."""
    return f"results-{cell_id}"


def no_place_to_run(cell: Cell, what: str, setting: str, hint: str) -> ConfigurationError:
    """The error for a cell whose device does not say where it runs on a CI system, naming the line."""
    return ConfigurationError(
        f"{cell.source}: cell {cell.id} has no {what}; add `{setting}` under devices.{cell.device}, {hint}"
    )


@dataclass(frozen=True)
class CellJob:
    """One cell's CI job, whichever system runs it."""

    cell: Cell
    # The matrix file as the job names it: relative to the repository root, where every job starts.
    matrix_file: str
    # The matrix file's directory, which the image's paths are relative to.
    root: Path
    # `pip install` arguments: the harness, then the project (package_installs).
    installs: tuple[str, ...] = ("-e .",)

    @cached_property
    def recipe(self) -> ImageRecipe:
        # Read when first needed, so that a system's own complaint (no runner labels, ...) comes first.
        if self.cell.image is None:
            # The job runs the cell with --executor docker, which skips a device without `image:`: a job
            # that could only ever skip is refused here rather than failing (exit 5) on every push.
            raise no_place_to_run(self.cell, "`image:`", "image: {}", "the stock image, for CI to run it in")
        return recipe_for(self.cell.device, self.cell.image, self.root)

    @property
    def image(self) -> str:
        """The content-hash tag of the cell's image."""
        return self.recipe.tag

    @property
    def torch_version(self) -> str:
        """The torch of the cell's image, which the job's host gets too."""
        return self.recipe.build_args.get("TORCH_VERSION", "")

    @property
    def torch_index_url(self) -> str:
        return self.recipe.build_args.get("TORCH_INDEX_URL", "")

    @property
    def artifact(self) -> str:
        return artifact_name(self.cell.id)

    @property
    def results_dir(self) -> str:
        """Where `harness run --out` writes the cell's results, and what the job keeps."""
        return f"{RESULTS_DIR}/{self.cell.id}"

    @property
    def timeout_minutes(self) -> int:
        """The cell's own timeout, plus an hour for its image build and (in qualification) the bench."""
        return int(self.cell.timeout_s // 60) + 60

    def build_image_command(self) -> str:
        # The matrix says where torch comes from (image.torch: base keeps an NGC base's own CUDA torch).
        return f"harness images build {self.cell.device} --matrix {shlex.quote(self.matrix_file)}"

    def run_command(self) -> str:
        """The command that runs the cell, the same on every system."""
        return (
            f"harness run {shlex.quote(self.matrix_file)} --cell {shlex.quote(self.cell.id)} "
            f"--executor docker --out {shlex.quote(self.results_dir)}"
        )

    def gpu_access_command(self) -> list[str]:
        """For a cuda cell: the plan line that says how its container gets the GPUs on this runner.

        With the NVIDIA container toolkit in the runner's dockerd, `image.gpus: auto` takes the runtime; on a
        runner with only the driver, the harness passes the device nodes and driver libraries itself. The
        job's log then says which, before the cell runs.
        """
        if self.cell.device != "cuda":
            return []
        matrix, cell = shlex.quote(self.matrix_file), shlex.quote(self.cell.id)
        return [f"harness plan {matrix} --cell {cell} --executor docker"]

    def commands(self) -> list[str]:
        """Set-up, image, cell: the whole job as shell commands run in one shell from the repository root."""
        return [
            *install_commands(self.torch_version, self.torch_index_url, self.installs),
            self.build_image_command(),
            *self.gpu_access_command(),
            self.run_command(),
        ]


def cell_jobs(cells: Iterable[Cell], matrix_file: Path, matrix: Matrix, system: str) -> list[CellJob]:
    """One job per cell, in matrix order; an empty selection is an error (no CI system runs none)."""
    cells = list(cells)
    installs = tuple(package_installs(matrix)) if cells else ()
    jobs = [CellJob(cell, matrix_file.as_posix(), matrix.root, installs) for cell in cells]
    if not jobs:
        raise ConfigurationError(
            f"no cell selected, so the {system} fan-out would be empty; check --cell and --required"
        )
    return jobs


@dataclass(frozen=True)
class ReportJob:
    """The job after the cells: merge every cell's results, strictly, over the cells that were selected."""

    matrix_file: str
    patterns: tuple[str, ...] = ()
    required_only: bool = False
    # The harness's `pip install` arguments (the first of package_installs): the report needs no project.
    harness_install: str = "-e ."

    def report_command(self) -> str:
        """`harness report` over the downloaded results, expecting exactly the selected cells."""
        words = ["harness", "report", RESULTS_DIR, "--matrix", self.matrix_file]
        for pattern in self.patterns:
            words += ["--cell", pattern]
        if self.required_only:
            words.append("--required")
        words += [
            "--strict",
            "--markdown",
            f"{REPORT_DIR}/summary.md",
            "--junit",
            f"{REPORT_DIR}/junit.xml",
            "--json",
            f"{REPORT_DIR}/summary.json",
        ]
        return shlex.join(words)

    def install_commands(self) -> list[str]:
        """The harness with the CPU build of torch: the report needs no device."""
        cpu = DEVICE_IMAGES["cpu"].build_args
        return install_commands(cpu["TORCH_VERSION"], cpu["TORCH_INDEX_URL"], [self.harness_install])
