"""`harness run [MATRIX]`: run the selected cells, live progress, results under --out, the final table."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path

from harness.commands import add_matrix_arguments, make_console, plan_matrix, positive_int
from harness.errors import EXIT_STRICT
from harness.executors import make_executors
from harness.model import NOT_RUN_STATUSES
from harness.output_paths import check_output_dir
from harness.progress import make_progress_view
from harness.report import RunReport, render_table, skipped_result
from harness.run_guardian import RunGuard
from harness.scheduler import CellScheduler, ResourcePool


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `run` subcommand."""
    parser = subparsers.add_parser("run", help="run the matrix's cells and write the results")
    add_matrix_arguments(parser)
    parser.add_argument(
        "--jobs",
        type=positive_int,
        default=None,
        metavar="N",
        help="cells at once (default: as many as the host's cores hold; a cpu cell of "
        "world size N wants N cores, and one cell always runs)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="release qualification: exit 3 when a required cell is skipped or errors",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("results"), help="results directory (default: results/)"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Plan, run, report; returns 0, 1 (failures), 3 (--strict) or 130 (interrupted)."""
    check_output_dir(args.out, "--out")
    with RunGuard(args.out) as guard:
        return _run(args, guard)


def _run(args: argparse.Namespace, guard: RunGuard) -> int:
    matrix, _, host, planned, docker = plan_matrix(args, run_id=guard.run_id)
    console = make_console()
    for note in guard.notes:
        console.print(f"note: {note}", markup=False)
    report = RunReport(args.out, planned, host.to_json(), strict=args.strict, matrix=str(matrix.path))
    gpu_ids = {"cuda": [gpu.index for gpu in host.nvidia_gpus], "xpu": list(range(host.intel_gpu_count))}
    pool = ResourcePool(cores=host.cores, gpu_ids=gpu_ids, jobs=args.jobs)
    executors = make_executors(
        {p.executor for p in planned if p.executor}, matrix.root, docker, run_id=guard.run_id
    )
    if docker is not None and "docker" not in executors:
        docker.close()
    view = make_progress_view(console, planned)

    def on_finish(result):
        report.add(result)
        view.cell_finished(result)

    for p in planned:
        if p.executor is None:
            on_finish(skipped_result(p))
    scheduler = CellScheduler(executors, pool, args.out, view.cell_started, view.event, on_finish)
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
    console.print(render_table(report.summary))
    # The reasons were printed as the run started, above every test line: repeat them where the eye lands.
    skipped: dict[str, list[str]] = {}
    for cell in report.cells:
        if cell["status"] == "skipped":
            skipped.setdefault(cell.get("reason") or "no reason given", []).append(cell["id"])
    for reason, ids in skipped.items():
        console.print(f"skipped {', '.join(ids)}: {reason}", markup=False)
    if exit_code == EXIT_STRICT:
        missing = [c["id"] for c in report.cells if c["required"] and c["status"] in NOT_RUN_STATUSES]
        console.print(f"--strict: required cells did not run or errored: {', '.join(missing)}")
    if interrupted:
        console.print("Interrupted: running cells were stopped; the summary holds what finished.")
    console.print(
        f"Results: {args.out.resolve()} (summary.json, summary.md, junit.xml) · exit code {exit_code}"
    )
    return exit_code
