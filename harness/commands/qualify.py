"""`harness qualify [MATRIX]`: release qualification on this host, recorded in qualification.json and .md,
and described by the record's manifest, record.json (harness/results/records.py).

Thin by design: `harness run --strict` on the required cells, then (with --bench) `harness bench` once per
device and world size that ran, then `harness report`'s merge over the results directory with the floors.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

from harness.bench.floors import applicable, load_floors
from harness.commands import (
    add_matrix_arguments,
    make_console,
    positive_int,
    resolve_matrix_path,
    slurm_options,
)
from harness.commands.bench import bench_for_qualification
from harness.common.errors import EXIT_INTERRUPTED, ConfigurationError
from harness.common.output_paths import check_output_dir
from harness.common.untrusted_text import print_line
from harness.config.matrix import load_matrix
from harness.host.checkout import checkout_of, harness_version
from harness.presentation.markdown import render_markdown
from harness.presentation.problems import print_bench_problems
from harness.results.merge import merge_results
from harness.results.records import check_record_names, qualification_manifest, write_manifest
from harness.results.report import missing_required, report_json
from harness.results.summary import load_summary
from harness.running.guardian import RunGuard
from harness.running.runs import plan_matrix, run_plan

QUALIFICATION_JSON = "qualification.json"
QUALIFICATION_MD = "qualification.md"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `qualify` subcommand."""
    parser = subparsers.add_parser(
        "qualify",
        help="release qualification: every required cell must run and pass; bench against floors",
        description="Run the required cells with --strict, optionally the bench per device and world size "
        "against bandwidth floors, and record fingerprints, results and figures in qualification.json and "
        "qualification.md. Exit 0 qualified, 1 failures (tests, wrong bench results, floors missed), "
        "2 bad input, 3 a required cell skipped or errored, 130 interrupted.",
    )
    add_matrix_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("qualification-results"), help="results directory")
    parser.add_argument("--jobs", type=positive_int, default=None, metavar="N", help="cells at once")
    parser.add_argument(
        "--bench", action="store_true", help="also run the bench once per device and world size that ran"
    )
    parser.add_argument("--quick", action="store_true", help="with --bench: the bench's --quick sweep")
    parser.add_argument(
        "--floors",
        type=Path,
        metavar="FILE",
        help="bandwidth floors to meet (implies --bench; default: the matrix's bench.floors)",
    )
    parser.add_argument(
        "--supersedes",
        action="append",
        default=[],
        metavar="RECORD",
        help="a record under qualification/ this one replaces, named in its record.json (repeatable)",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Run, bench, record; the exit code of the merged qualification report."""
    supersedes = check_record_names(args.supersedes, "--supersedes")
    matrix = load_matrix(resolve_matrix_path(args.matrix))
    bench = args.bench or args.floors is not None
    floors_path = args.floors or matrix.floors
    floors = load_floors(floors_path) if bench and floors_path else []
    required = [cell for cell in matrix.select(args.cell) if cell.required]
    if not required:
        raise ConfigurationError(
            f"{matrix.path}: no required cell among those selected; qualification runs `required: true` cells"
        )
    check_output_dir(args.out, "--out")
    for stale in args.out.glob("bench-*.json"):
        stale.unlink()
    with (
        RunGuard(args.out) as guard,
        plan_matrix(
            matrix.path,
            [cell.id for cell in required],
            executor=args.executor,
            offline=args.offline,
            run_id=guard.run_id,
            slurm_options=slurm_options(args),
        ) as plan,
    ):
        if run_plan(plan, args.out, guard, jobs=args.jobs, strict=True) == EXIT_INTERRUPTED:
            return EXIT_INTERRUPTED
    console = make_console()
    if bench:
        ran = [cell for cell in load_summary(args.out).cells if cell.executor]
        targets = sorted({(cell.device, cell.world_size) for cell in ran})
        # On one rank nothing crosses a link: busbw is 0 or a local copy's, and the naive scheme is the
        # same work. Bench world size 1 only where a floor asks for it.
        for device, world_size in [t for t in targets if t[1] == 1 and not applicable(floors, *t)]:
            console.print(f"bench: {device} world size 1 left out: nothing crosses a link, no floor names it")
            targets.remove((device, world_size))
        if not targets:
            console.print("bench: no cell ran here at a world size worth measuring")
        # A bench that fails records the environment its device's cells ran in.
        fingerprints = {cell.device: cell.fingerprint for cell in ran}
        for device, world_size in targets:
            console.print(f"[bold]bench[/]: {device} world size {world_size}")
            bench_for_qualification(
                device, world_size, args.out, quick=args.quick, fingerprint=fingerprints[device]
            )
    report = merge_results([args.out], expected=required, strict=True, floors=floors)
    (args.out / QUALIFICATION_MD).write_text(render_markdown(report), encoding="utf-8")
    document = report_json(report, args.out.resolve())
    document.update(qualified=report.exit_code == 0, floors_file=str(floors_path) if floors else None)
    (args.out / QUALIFICATION_JSON).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    manifest = qualification_manifest(
        report.cells,
        report.bench,
        report.exit_code,
        command=shlex.join(["harness", *sys.argv[1:]]),
        checkout=checkout_of(matrix.path.parent),
        harness_version=harness_version(),
        supersedes=supersedes,
        today=datetime.now(timezone.utc).date(),
    )
    write_manifest(args.out, manifest)
    print_bench_problems(console, report)
    verdict = "QUALIFIED" if report.exit_code == 0 else "NOT QUALIFIED"
    if missing_required(report):
        verdict += f" (required cells not passed for want of running: {', '.join(missing_required(report))})"
    print_line(console, f"{verdict} · {args.out / QUALIFICATION_MD} · exit code {report.exit_code}", "bold")
    return report.exit_code
