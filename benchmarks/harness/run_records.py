"""What writing a run's own records costs as cells finish (issue #29, item 7), on any checkout.

Drives the code that runs after every finished cell of `harness run` (`RunReport.add`, then `finish`)
over N synthetic cells, each with a junit.xml of T tests of which F fail, and prints the time of the
first and last adds, their total and the peak RSS. Main re-parsed every cell's junit.xml after each
cell (quadratic); the figure to compare is the total, and whether the last adds cost more than the first.

    PYTHONPATH=. python benchmarks/harness/run_records.py [--cells 200] [--tests 1000] [--failures 10]

PYTHONPATH picks the checkout measured (e.g. a `git worktree` of main for the "before" figure).
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import harness
from harness.config.model import Cell
from harness.presentation.markdown import render_markdown
from harness.results.cell_result import CellResult, TestCounts
from harness.results.summary import RunReport


def junit_document(tests: int, failures: int) -> bytes:
    """A pytest-like junit.xml: `tests` testcases, the first `failures` of them failed with a traceback."""
    cases = []
    for i in range(tests):
        head = f'<testcase classname="tests.test_collectives" name="test_all_reduce[{i}]" time="0.012">'
        if i < failures:
            text = "\n".join(
                ["ranks 0, 1 of 2 failed: tensors differ", *(f"  frame {k}" for k in range(20))]
                + ["tests/test_collectives.py:42: AssertionError"]
            )
            failure = f'<failure message="ranks 0, 1 of 2 failed: tensors differ">{text}</failure>'
            cases.append(f"{head}{failure}</testcase>")
        else:
            cases.append(f"{head}</testcase>")
    suite = (
        f'<testsuite name="pytest" errors="0" failures="{failures}" skipped="0" tests="{tests}" '
        f'time="12.3" hostname="bench">{"".join(cases)}</testsuite>'
    )
    return f'<?xml version="1.0" encoding="utf-8"?><testsuites>{suite}</testsuites>'.encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=200)
    parser.add_argument("--tests", type=int, default=1000)
    parser.add_argument("--failures", type=int, default=10, help="failed tests per cell")
    args = parser.parse_args()

    cells = [
        Cell(id=f"cpu-gloo-ws{i}", device="cpu", backend="gloo", world_size=2, tests=("tests",))
        for i in range(args.cells)
    ]
    junit = junit_document(args.tests, args.failures)
    adds: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        report = RunReport(
            out, [c.id for c in cells], {}, strict=False, matrix="bench.yaml", markdown=render_markdown
        )
        for cell in cells:
            cell_dir = out / cell.id
            cell_dir.mkdir(parents=True)
            (cell_dir / "junit.xml").write_bytes(junit)
            result = CellResult.of_cell(
                cell,
                "failed" if args.failures else "passed",
                counts=TestCounts(passed=args.tests - args.failures, failed=args.failures),
                duration_s=12.3,
                results_dir=str(cell_dir),
            )
            start = time.perf_counter()
            report.add(result)
            adds.append(time.perf_counter() - start)
        start = time.perf_counter()
        report.finish(interrupted=False)
        finish_s = time.perf_counter() - start
        junit_bytes = (out / "junit.xml").stat().st_size
    first, last = adds[:10], adds[-10:]
    print(
        json.dumps(
            {
                "harness": harness.__file__,
                "cells": args.cells,
                "tests_per_cell": args.tests,
                "failures_per_cell": args.failures,
                "adds_total_s": round(sum(adds), 2),
                "first_10_adds_mean_ms": round(1000 * sum(first) / len(first), 1),
                "last_10_adds_mean_ms": round(1000 * sum(last) / len(last), 1),
                "finish_s": round(finish_s, 2),
                "merged_junit_bytes": junit_bytes,
                "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
