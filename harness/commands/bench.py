"""`harness bench`: bandwidth of every collective, dispatch+combine against the naive reference, floors.

Also the bench `harness qualify --bench` runs once per device and world size (`bench_for_qualification`).
Measuring is harness/bench/runner.py's; the verdict on the rows is harness/bench/verdict.py's.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.bench.floors import Floor, load_floors
from harness.bench.options import ALL_OPS, DTYPES, BenchOptions, build_options, format_size
from harness.bench.plot import require_matplotlib, write_plot
from harness.bench.results import (
    build_document,
    collective_label,
    is_collective,
    scheme_label,
    write_document,
)
from harness.bench.runner import run_bench
from harness.bench.table import print_tables
from harness.bench.verdict import judge_rows
from harness.common.errors import EXIT_OK, EXIT_TEST_FAILURES, HarnessError
from harness.common.output_paths import check_output_file

DESCRIPTION = (
    "nccl-tests-style bandwidth of every communicator collective (algbw, busbw, correctness per size), the "
    "communicator's overhead against raw torch.distributed, and all2all dispatch+combine against the naive "
    "broadcast reference. Exit 1 when a result is wrong or a floor is missed, 2 on bad options."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `bench` subcommand."""
    parser = subparsers.add_parser(
        "bench", help="measure collectives and all2all dispatch/combine", description=DESCRIPTION
    )
    parser.add_argument("--device", choices=("cpu", "cuda", "xpu"), default="cpu")
    parser.add_argument("--world-size", type=int, default=2, help="ranks, one device each (default 2)")
    parser.add_argument("--ops", help=f"comma-separated subset of: {', '.join(ALL_OPS)} (default: all)")
    parser.add_argument(
        "--sizes", help="message sizes, e.g. 1K,64K,1M (default: 1K..64M on cpu, 1K..1G on gpus, x4 steps)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer sizes and repeats (and a smaller hidden size on cpu)"
    )
    parser.add_argument("--dtype", choices=DTYPES, help="collectives' dtype (default: float32 cpu, bf16 gpu)")
    parser.add_argument("--warmup", type=int, help="untimed iterations per size (default 2 cpu, 5 gpu)")
    parser.add_argument("--iters", type=int, help="timed iterations per repeat (default: by size)")
    parser.add_argument(
        "--repeats", type=int, help="timed repeats, median reported (default 5 cpu, 7 gpu, 3 with --quick)"
    )
    parser.add_argument("--tokens", help="dispatch+combine tokens per rank (default 64,512,4096)")
    parser.add_argument("--hidden", type=int, help="dispatch+combine hidden size (default 4096)")
    parser.add_argument("--dispatch-dtype", choices=DTYPES, help="dispatch+combine dtype (default bfloat16)")
    parser.add_argument(
        "--no-overhead", action="store_true", help="do not time raw torch.distributed beside the communicator"
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds without progress before the bench is ended"
    )
    parser.add_argument(
        "--json",
        metavar="FILE",
        help="write {rows, environment, settings} here (default: results/bench-DEVICE-wsN-TIME.json)",
    )
    parser.add_argument("--plot", metavar="FILE", help="write a PNG: busbw against size, dispatch+combine")
    parser.add_argument("--floors", metavar="FILE", help="fail (exit 1) under a floor of this file")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    """Run the bench; 0 when every row is correct and above its floors, 1 otherwise."""
    options = build_options(
        device=args.device,
        world_size=args.world_size,
        ops=args.ops,
        sizes=args.sizes,
        quick=args.quick,
        dtype=args.dtype,
        warmup=args.warmup,
        iters=args.iters,
        repeats=args.repeats,
        tokens=args.tokens,
        hidden=args.hidden,
        dispatch_dtype=args.dispatch_dtype,
        overhead=not args.no_overhead,
        timeout_s=args.timeout,
    )
    floors = load_floors(args.floors) if args.floors else []
    return bench(
        options,
        floors=floors,
        json_path=Path(args.json) if args.json else default_json_path(options),
        plot_path=Path(args.plot) if args.plot else None,
    )


def bench(
    options: BenchOptions,
    *,
    json_path: Path,
    floors: Sequence[Floor] = (),
    plot_path: Path | None = None,
) -> int:
    """Run the bench (`harness bench`, `harness qualify`); 0 when every row is correct and above its floors.

    The output paths are checked before anything runs: a path that cannot be written must not cost the
    measurements.
    """
    if plot_path is not None:
        require_matplotlib()
    check_output_file(json_path, "--json")
    check_output_file(plot_path, "--plot")
    title = f"{options.device} ({options.backend}) world size {options.world_size}"
    ops = ", ".join(options.ops)
    print(f"harness bench: {title}, {options.dtype}, {len(options.sizes)} sizes, ops {ops}", flush=True)
    rows = run_bench(options, on_row=_print_progress)
    print_tables(rows, title)
    _print_speedups(rows)
    write_document(json_path, build_document(rows, options, _environment()))
    if plot_path is not None:
        write_plot(plot_path, rows, f"comm-harness bench: {title}")
        print(f"wrote {plot_path}")
    verdict = judge_rows(rows, floors, path=json_path, device=options.device, world_size=options.world_size)
    failures = [f"WRONG: {line}" for line in verdict.incorrect]
    failures += [f"FLOOR: {violation.message()}" for violation in verdict.violations]
    for floor in verdict.unchecked:
        print(f"note: no row was measured for floor {floor.describe()} ({floor.source}); not checked")
    for line in failures:
        print(line, file=sys.stderr)
    if failures:
        print(f"harness bench: {len(failures)} failure(s)", file=sys.stderr)
    # The last line, where the eye lands and scripts look: where the figures are.
    print(f"harness bench: results in {json_path}", flush=True)
    return EXIT_TEST_FAILURES if verdict.failed else EXIT_OK


def bench_document_name(device: str, world_size: int) -> str:
    """The file `harness qualify` writes one bench's document to."""
    return f"bench-{device}-ws{world_size}.json"


def bench_for_qualification(
    device: str, world_size: int, out_dir: Path, *, quick: bool, fingerprint: dict[str, Any]
) -> Path:
    """Run the bench for one device and world size into out_dir (`harness qualify --bench`), judged later
    with the cells' results; a bench that could not finish leaves a document with its error instead of rows,
    so the record says why a figure is missing."""
    path = out_dir / bench_document_name(device, world_size)
    path.unlink(missing_ok=True)
    try:
        bench(build_options(device=device, world_size=world_size, quick=quick), json_path=path)
    except HarnessError as error:
        settings = {"device": device, "world_size": world_size, "quick": quick}
        write_document(
            path, {"rows": [], "environment": fingerprint, "settings": settings, "error": str(error)}
        )
    return path


def default_json_path(options: BenchOptions) -> Path:
    """Where a bench without --json leaves its figures: results/ (ignored by git), by device and time."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("results") / f"bench-{options.device}-ws{options.world_size}-{stamp}.json"


def _print_progress(row: dict[str, Any]) -> None:
    if is_collective(row):
        print(
            f"  {collective_label(row):<27}{format_size(row['bytes']):>6}  {row['time_us']:>12.1f} us  "
            f"busbw {row['busbw_gbps']:>9.3f} GB/s  {'ok' if row['correct'] else 'WRONG'}",
            flush=True,
        )
    elif row.get("op") == "dispatch_combine":
        print(
            f"  dispatch_combine {row['tokens']:>5} tokens  {scheme_label(row):<38}"
            f"{row['time_us']:>12.0f} us  {'ok' if row['correct'] else 'WRONG'}",
            flush=True,
        )


def _print_speedups(rows: list[dict[str, Any]]) -> None:
    speedups = [r for r in rows if "speedup_vs_naive" in r]
    if speedups:
        text = ", ".join(f"{r['tokens']} tokens {r['speedup_vs_naive']:.2f}x" for r in speedups)
        backend = speedups[0]["backend"]
        print(
            f"{backend} dispatch+combine against the naive reference (naive time / its time, best repeats): "
            f"{text}"
        )


def _environment() -> dict[str, Any]:
    try:
        from harness.host.fingerprint import collect_fingerprint

        return collect_fingerprint()
    except Exception as error:  # a fingerprint that cannot be taken must not lose the measurements
        return {"error": f"fingerprint failed: {error}"}
