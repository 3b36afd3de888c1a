"""`harness report` of a hostile artifact: one cell whose junit.xml is 64 MiB of 600,000 failures (issue #29).

Lays out a finished cell directory (cell.json, result.json, junit.xml just under the 64 MiB read limit)
and times `harness report DIR` in a child process, plain and with --json/--junit/--markdown, printing the
exit code, wall time, peak RSS of the child and how many lines it printed. The bar: 15 s and 300 MiB.

    PYTHONPATH=. python benchmarks/harness/report_big_junit.py [--failures 600000] [--mib 64]

PYTHONPATH picks the checkout measured (e.g. a `git worktree` of main for the "before" figure).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.config.model import Cell
from harness.results.cell_dir import write_cell_json, write_completion_record
from harness.results.cell_result import CellResult, TestCounts


def write_big_junit(path: Path, failures: int, size: int) -> int:
    """A junit.xml of `failures` failed testcases padded to just under `size` bytes; returns its size."""
    head = f'<?xml version="1.0"?><testsuites><testsuite name="p" tests="{failures}" failures="{failures}">\n'
    tail = "</testsuite></testsuites>\n"
    # 600,000 of these fit 64 MiB only when short: about 110 bytes each.
    template = (
        '<testcase classname="t" name="t{i:07d}">'
        '<failure message="rank 1 of 2 failed">E{pad}</failure></testcase>\n'
    )

    bare = len(template.format(i=0, pad=""))
    pad = "x" * max(0, (size - len(head) - len(tail) - 1024) // failures - bare)
    with path.open("w") as stream:
        stream.write(head)
        for i in range(failures):
            stream.write(template.format(i=i, pad=pad))
        stream.write(tail)
    if path.stat().st_size > size:
        raise SystemExit(f"{failures} failures do not fit {size} bytes: ask for fewer or more MiB")
    return path.stat().st_size


def measure(args: list[str], cwd: Path) -> dict[str, object]:
    """Exit code, wall time, peak RSS and printed lines of `harness ARGS` in a fresh child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "harness.commands.cli", *args],
        cwd=cwd,
        capture_output=True,
        env={**os.environ, "COLUMNS": "120", "GITHUB_ACTIONS": ""},
    )
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "command": "harness " + " ".join(args),
        "exit_code": done.returncode,
        "wall_s": round(wall, 1),
        # ru_maxrss of children is the largest child so far: reported only when it grew.
        "peak_rss_mib": round(peak / 1024) if peak > before else f"<= {round(before / 1024)}",
        "stdout_lines": done.stdout.count(b"\n"),
        "stderr_tail": done.stderr.decode(errors="replace")[-300:],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--failures", type=int, default=600_000)
    parser.add_argument("--mib", type=float, default=64)
    parser.add_argument(
        "--plain-only", action="store_true", help="skip the run with --json/--junit/--markdown"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cell = Cell(id="cpu-gloo-ws2", device="cpu", backend="gloo", world_size=2, tests=("tests",))
        cell_dir = root / "artifact" / cell.id
        write_cell_json(cell, cell_dir)
        size = write_big_junit(cell_dir / "junit.xml", args.failures, int(args.mib * (1 << 20)) - 1)
        counts = TestCounts(failed=args.failures)
        write_completion_record(
            CellResult.of_cell(cell, "failed", "boom", counts=counts, results_dir=str(cell_dir)), cell_dir
        )
        runs = [measure(["report", str(cell_dir)], root)]
        if not args.plain_only:
            outputs = ["--json", "r.json", "--junit", "r.xml", "--markdown", "r.md"]
            runs.append(measure(["report", str(cell_dir), *outputs], root))
        import harness

        print(json.dumps({"harness": harness.__file__, "junit_bytes": size, "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
