"""Library entry points that the commands call: plan a matrix on this host, run a plan into a directory.

`harness plan`, `harness run` and `harness qualify` are thin argument parsers over these; no command
builds another's arguments to call it. Planning has no side effects on Docker (it only asks which images
exist); leftovers of crashed runs are removed when a run starts. A run is declared steps: open every
executor (each closed when the run's `ExitStack` unwinds, however it ends), start them, run the cells
under a progress view, write the summary; what is printed before and after is presentation's
(harness/presentation/run_summary.py).
"""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from harness.common.errors import ConfigurationError
from harness.config.matrix import Matrix, load_matrix
from harness.config.model import Cell, SlurmSpec
from harness.host.probe import HostCapabilities, probe_host
from harness.planning.plan import ExecutorChoice, PlannedCell, oversubscription_warnings, plan_cells
from harness.presentation.console import make_console
from harness.presentation.markdown import render_markdown
from harness.presentation.progress import make_progress_view
from harness.presentation.run_summary import print_run_end, print_run_start
from harness.results.cell_result import CellResult
from harness.results.summary import RunReport
from harness.running.executors import open_docker_executor, open_executors
from harness.running.guardian import RunGuard
from harness.running.scheduler import CellScheduler, ResourcePool

if TYPE_CHECKING:
    from harness.running.executors.docker import DockerExecutor


@dataclass
class MatrixPlan:
    """The selected cells of a matrix, the host, and how each cell runs here (or why it is skipped); a
    context manager: its exit releases the Docker executor, whether the plan was run or not."""

    matrix: Matrix
    host: HostCapabilities
    planned: list[PlannedCell]
    # The Docker executor that checked the images (None without an engine): the run's, if it runs.
    docker: DockerExecutor | None = None
    # The command line's --slurm-* options, for cells that run as Slurm jobs.
    slurm_options: SlurmSpec | None = None

    def close(self) -> None:
        """Release the Docker executor (closing it again after a run that used it does nothing)."""
        if self.docker is not None:
            self.docker.close()

    def __enter__(self) -> MatrixPlan:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def plan_matrix(
    matrix_path: Path,
    patterns: Sequence[str] = (),
    *,
    executor: ExecutorChoice = "auto",
    offline: bool = False,
    run_id: str | None = None,
    slurm_options: SlurmSpec | None = None,
    pytest_args: Sequence[str] = (),
) -> MatrixPlan:
    """Load the matrix, select cells, probe the host (and Slurm, where asked for) and decide each cell's
    executor; `pytest_args` (from the command line, after `--`) are added to every selected cell's."""
    matrix = load_matrix(matrix_path)
    cells = [with_pytest_args(cell, pytest_args) for cell in matrix.select(patterns)]
    host = probe_host(docker=executor != "local")
    # The Docker executor is the plan's once it is returned; planning that fails on the way closes it.
    with ExitStack() as opened:
        docker = None
        if host.docker_available and executor != "local":
            try:
                docker = opened.enter_context(
                    open_docker_executor(
                        matrix.project_root, matrix_dir=matrix.root, offline=offline, run_id=run_id
                    )
                )
            except ConfigurationError as error:
                if executor == "docker":
                    raise
                host = dataclasses.replace(host, docker_available=False, docker_reason=str(error))
        slurm_gap = "no Slurm cluster was asked"
        if executor == "slurm" or (executor == "auto" and any(cell.executor == "slurm" for cell in cells)):
            from harness.running.executors.slurm_jobs import slurm_gap as find_slurm_gap

            slurm_gap = find_slurm_gap()
        image_check = docker.image_status if docker is not None else None
        plan = MatrixPlan(
            matrix, host, plan_cells(cells, host, executor, image_check, slurm_gap), docker, slurm_options
        )
        opened.pop_all()
    return plan


def with_pytest_args(cell: Cell, extra: Sequence[str]) -> Cell:
    """`cell` with command-line pytest arguments after its own; a `-k`/`-m` there narrows the cell's
    `keyword:`/`markers:` (both must hold) instead of replacing them, as pytest's last `-k` would."""
    if not extra:
        return cell
    narrowed = {"-k": cell.keyword, "-m": cell.markers}
    rest: list[str] = []
    words = iter(extra)
    for word in words:
        flag = word[:2]
        if flag in narrowed and word not in ("-k", "-m") and not word.startswith("--"):
            value = word[2:]
        elif word in narrowed:
            value = next(words, "")
        else:
            rest.append(word)
            continue
        narrowed[flag] = f"({narrowed[flag]}) and ({value})" if narrowed[flag] else value
    return dataclasses.replace(
        cell,
        keyword=narrowed["-k"],
        markers=narrowed["-m"],
        pytest_args=(*cell.pytest_args, *rest),
    )


def run_plan(plan: MatrixPlan, out: Path, guard: RunGuard, *, jobs: int | None, strict: bool) -> int:
    """Run the planned cells into `out`, live progress and the final table on stdout; the exit code.

    0 passed, 1 failures, 3 `strict` and a required cell did not run to a verdict, 5 no test executed in
    any cell (every cell skipped, say: a CI job whose cell cannot run here fails), 130 interrupted.
    """
    console = make_console()
    report = RunReport(
        out,
        [p.cell.id for p in plan.planned],
        plan.host.to_json(),
        strict=strict,
        matrix=str(plan.matrix.path),
        markdown=render_markdown,
    )
    interrupted = run_cells(plan, report, guard, console, jobs=jobs)
    report.finish(interrupted=interrupted)
    final = report.results_report()
    print_run_end(console, final, out, interrupted=interrupted)
    return final.exit_code


def run_cells(
    plan: MatrixPlan, report: RunReport, guard: RunGuard, console: Console, *, jobs: int | None
) -> bool:
    """Run every planned cell (a skipped one is recorded as such) into `report`; whether it was interrupted.

    Every executor, the progress view and the SIGTERM handler are closed or restored on every way out.
    """
    host, planned = plan.host, plan.planned
    gpu_ids = {"cuda": [gpu.index for gpu in host.nvidia_gpus], "xpu": list(range(host.intel_gpu_count))}
    pool = ResourcePool(cores=host.cores, gpu_ids=gpu_ids, jobs=jobs)
    with ExitStack() as resources:
        executors = open_executors(
            resources,
            {p.executor for p in planned if p.executor},
            plan.matrix.root,
            plan.docker,
            run_id=guard.run_id,
            project_root=plan.matrix.project_root,
            slurm_options=plan.slurm_options,
        )
        notes = [*guard.notes, *(note for executor in executors.values() for note in executor.start())]
        print_run_start(console, notes, oversubscription_warnings(planned, host.cores))
        view = resources.enter_context(make_progress_view(console, planned))

        def on_finish(result: CellResult) -> None:
            report.add(result)
            view.cell_finished(result)

        for p in planned:
            if p.executor is None:
                on_finish(p.skipped_result())
        scheduler = CellScheduler(executors, pool, report.out_dir, view.cell_started, view.event, on_finish)
        resources.enter_context(sigterm_interrupts())
        _, interrupted = scheduler.run(planned)
    return interrupted


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within, SIGTERM (how CI cancels a job) stops the cells as Ctrl-C does, and the summary is written."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
