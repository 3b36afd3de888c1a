"""Library entry points that the commands call: plan a matrix on this host, run a plan into a directory.

`harness plan`, `harness run` and `harness qualify` are thin argument parsers over these; no command
builds another's arguments to call it. Planning has no side effects on Docker (it only asks which images
exist); leftovers of crashed runs are removed when a run starts.
"""

from __future__ import annotations

import dataclasses
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from harness.common.errors import EXIT_NO_TESTS, EXIT_STRICT, ConfigurationError
from harness.running.executors import make_executors, open_docker_executor
from harness.running.executors.slurm import SlurmOptions
from harness.config.matrix import Matrix, load_matrix
from harness.config.model import Cell
from harness.results.cell_result import FAILING_STATUSES, NOT_RUN_STATUSES, CellResult
from harness.running.executors.protocol import Executor
from harness.planning.plan import ExecutorChoice, PlannedCell, oversubscription_warnings, plan_cells
from harness.host.probe import HostCapabilities, probe_host
from harness.presentation.progress import make_progress_view
from harness.results.files import LOG_TXT
from harness.results.junit import Failure
from harness.presentation.markdown import render_markdown, render_table
from harness.results.report import ResultsReport, nothing_ran_reason
from harness.results.summary import RunReport
from harness.running.guardian import RunGuard
from harness.running.scheduler import CellScheduler, ResourcePool
from harness.common.untrusted_text import print_line


@dataclass
class MatrixPlan:
    """The selected cells of a matrix, the host, and how each cell runs here (or why it is skipped)."""

    matrix: Matrix
    host: HostCapabilities
    planned: list[PlannedCell]
    # The Docker executor that checked the images (None without an engine): closed, or used to run.
    docker: Executor | None = None
    # The command line's --slurm-* options, for cells that run as Slurm jobs.
    slurm_options: SlurmOptions | None = None

    def close(self) -> None:
        """Release the Docker executor when the plan is not run."""
        if self.docker is not None:
            self.docker.close()


def plan_matrix(
    matrix_path: Path,
    patterns: Sequence[str] = (),
    *,
    executor: ExecutorChoice = "auto",
    offline: bool = False,
    run_id: str | None = None,
    slurm_options: SlurmOptions | None = None,
    pytest_args: Sequence[str] = (),
) -> MatrixPlan:
    """Load the matrix, select cells, probe the host (and Slurm, where asked for) and decide each cell's
    executor; `pytest_args` (from the command line, after `--`) are added to every selected cell's."""
    matrix = load_matrix(matrix_path)
    cells = [with_pytest_args(cell, pytest_args) for cell in matrix.select(patterns)]
    host = probe_host(docker=executor != "local")
    docker = None
    if host.docker_available and executor != "local":
        try:
            docker = open_docker_executor(
                matrix.project_root, matrix_dir=matrix.root, offline=offline, run_id=run_id
            )
        except ConfigurationError as error:
            if executor == "docker":
                raise
            host = dataclasses.replace(host, docker_available=False, docker_reason=str(error))
    image_check = getattr(docker, "image_status", None)
    slurm_gap = "no Slurm cluster was asked"
    if executor == "slurm" or (executor == "auto" and any(cell.executor == "slurm" for cell in cells)):
        from harness.running.executors.slurm_jobs import slurm_gap as find_slurm_gap

        slurm_gap = find_slurm_gap()
    planned = plan_cells(cells, host, executor, image_check, slurm_gap)
    return MatrixPlan(matrix, host, planned, docker, slurm_options)


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
    for note in guard.notes:
        print_line(console, f"note: {note}")
    matrix, host, planned = plan.matrix, plan.host, plan.planned
    report = RunReport(
        out,
        [p.cell.id for p in planned],
        host.to_json(),
        strict=strict,
        matrix=str(matrix.path),
        markdown=render_markdown,
    )
    gpu_ids = {"cuda": [gpu.index for gpu in host.nvidia_gpus], "xpu": list(range(host.intel_gpu_count))}
    pool = ResourcePool(cores=host.cores, gpu_ids=gpu_ids, jobs=jobs)
    executors = make_executors(
        {p.executor for p in planned if p.executor},
        matrix.root,
        plan.docker,
        run_id=guard.run_id,
        project_root=matrix.project_root,
        slurm_options=plan.slurm_options,
    )
    if plan.docker is not None and "docker" not in executors:
        plan.docker.close()
    for executor in executors.values():
        for note in getattr(executor, "notes", ()):
            console.print(f"note: {note}", markup=False)
        remove_stale = getattr(executor, "remove_stale_containers", None)
        if remove_stale is not None:
            for name in remove_stale():
                print_line(console, f"note: removed container {name}, left by a harness that died")
    for line in oversubscription_warnings(planned, host.cores):
        console.print(line, markup=False)
    view = make_progress_view(console, planned)

    def on_finish(result: CellResult) -> None:
        report.add(result)
        view.cell_finished(result)

    for p in planned:
        if p.executor is None:
            on_finish(p.skipped_result())
    scheduler = CellScheduler(executors, pool, out, view.cell_started, view.event, on_finish)
    # CI cancels jobs with SIGTERM: stop the cells as for Ctrl-C, and still write the summary.
    previous_sigterm = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        _, interrupted = scheduler.run(planned)
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
        view.close()
        for executor in executors.values():
            executor.close()
    exit_code = report.finish(interrupted=interrupted)
    final = report.results_report()
    console.print(render_table(final))
    print_failures(console, final, out)
    # The reasons were printed as the run started, above every test line: repeat them where the eye lands.
    skipped: dict[str, list[str]] = {}
    for cell in report.cells:
        if cell.status == "skipped":
            skipped.setdefault(cell.reason or "no reason given", []).append(cell.id)
    for reason, ids in skipped.items():
        print_line(console, f"skipped {', '.join(ids)}: {reason}")
    if exit_code == EXIT_STRICT:
        missing = [c.id for c in report.cells if c.required and c.status in NOT_RUN_STATUSES]
        print_line(console, f"--strict: required cells did not run or errored: {', '.join(missing)}")
    if exit_code == EXIT_NO_TESTS:
        print_line(console, nothing_ran_reason(report.cells))
    if interrupted:
        console.print("Interrupted: running cells were stopped; the summary holds what finished.")
    files = "(summary.json, summary.md, junit.xml)"
    print_line(console, f"Results: {out.resolve()} {files} · exit code {exit_code}")
    return exit_code


FAILURES_SHOWN_PER_CELL = 10


def print_failures(console: Console, report: ResultsReport, out: Path) -> None:
    """Per cell that failed: its failed tests, one line each as `harness report` words them, and its log.

    Every line holds words of the cell (ids, messages, reasons): each is printed through `print_line`.
    """
    by_cell: dict[str, list[Failure]] = {}
    for failure in report.failures:
        by_cell.setdefault(failure.cell, []).append(failure)
    for flaky in report.flaky:
        print_line(console, flaky.flaky_line())
    for line in [*report.quarantine.failure_lines(), *report.quarantine.release_lines()]:
        print_line(console, line)
    for cell in report.cells:
        if cell.status not in FAILING_STATUSES:
            continue
        failures = by_cell.get(cell.id, [])
        for failure in failures[:FAILURES_SHOWN_PER_CELL]:
            print_line(console, failure.one_line())
        more = len(failures) - FAILURES_SHOWN_PER_CELL + report.failures_left_out.get(cell.id, 0)
        if more > 0:
            print_line(console, f"... and {more} more in {cell.id}")
        if not failures:
            reason = (cell.reason.strip().splitlines() or ["no reason recorded"])[0]
            print_line(console, f"{cell.status.upper()} {cell.id}: {reason}")
        if cell.results_dir:
            print_line(console, f"  full log: {out / cell.results_dir / LOG_TXT}")


def make_console() -> Console:
    """stdout; wide enough in CI logs that the result table is not wrapped."""
    console = Console(highlight=False)
    return console if console.is_terminal else Console(highlight=False, width=160)
