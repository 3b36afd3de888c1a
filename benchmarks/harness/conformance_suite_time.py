"""How long the whole conformance suite (tests/communicators) takes at one world size and Hypothesis profile.

    python benchmarks/harness/conformance_suite_time.py                        # ws4, profile ci, 1 run
    python benchmarks/harness/conformance_suite_time.py --world-size 3 --runs 3 --profile deep

Prints, per run, the wall time, the CPU time of pytest and its ranks (user + sys, which other load on the
machine inflates far less than wall time) and the load average before the run, then the slowest tests.
The issue's figure is the wall time at ws4 with the `ci` profile on a quiet 2-core machine: under 60 s.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_once(world_size: int, profile: str, durations: int) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the run's processes, pytest's output) of one suite run."""
    command = [
        sys.executable, "-m", "pytest", "tests/communicators", "--dist-world-size", str(world_size),
        "-q", "-p", "no:cacheprovider", "--hypothesis-profile", profile, f"--durations={durations}",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(
            f"the suite failed (exit {done.returncode}):\n{done.stdout[-4000:]}{done.stderr[-2000:]}"
        )
    return wall, cpu, done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--world-size", type=int, default=4)
    parser.add_argument("--profile", default="ci", help="Hypothesis profile (ci, deep)")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--durations", type=int, default=8, help="slowest tests to list (last run)")
    args = parser.parse_args()
    print(f"conformance suite, ws{args.world_size}, profile {args.profile}, {os.cpu_count()} cores")
    output = ""
    walls = []
    for run in range(1, args.runs + 1):
        load = os.getloadavg()[0]
        wall, cpu, output = run_once(args.world_size, args.profile, args.durations)
        walls.append(wall)
        summary = [line for line in output.splitlines() if line.strip()][-1]
        print(f"run {run}: wall {wall:.1f} s, cpu {cpu:.1f} s, load before {load:.1f}: {summary}", flush=True)
    print(f"best wall {min(walls):.1f} s")
    slowest = output.split("slowest", 1)[-1].splitlines()[1 : args.durations + 1]
    print("slowest tests (last run):\n" + "\n".join(slowest))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
