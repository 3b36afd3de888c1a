"""What a retry costs: a flaky test's second attempt (on fresh ranks) against its first, from junit.xml.

Runs a suite of N tests that each fail their first attempt only (state in a file) under the plugin with
`--dist-retries 1`, in fork mode and in reuse mode, and reads each test's attempts back from the junit.xml
the plugin wrote: the first attempt's seconds are in its `<flakyFailure type="attempt 1 of 2 (S s)">`, the
second is the testcase's time less the first. Prints the medians per mode.

    python benchmarks/harness/retry_overhead.py [--tests 20] [--world-size 2]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

SUITE = '''
import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist


@pytest.mark.parametrize("n", range(int(os.environ["RETRY_TESTS"])))
def test_fails_its_first_attempt(dist_env, n):
    marker = Path(os.environ["RETRY_STATE"]) / f"{n}-{os.environ['RETRY_MODE']}"
    t = torch.ones(1024)
    dist.all_reduce(t)
    dist.barrier()
    first = not marker.exists()
    dist.barrier()
    if dist_env.rank == 0 and first:
        marker.write_text("1")
    assert not first, "first attempt fails"
'''

ATTEMPT = re.compile(r"attempt 1 of \d+ \(([\d.]+) s\)")


def run_mode(mode: str, suite: Path, state: Path, tests: int, world_size: int) -> list[tuple[float, float]]:
    junit = suite / f"junit-{mode}.xml"
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(suite / "test_retry.py"),
        "--dist-device", "cpu", "--dist-world-size", str(world_size), "--dist-retries", "1",
        "--dist-reuse", mode, f"--junitxml={junit}",
    ]
    env = {"RETRY_TESTS": str(tests), "RETRY_STATE": str(state), "RETRY_MODE": mode, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{mode}: pytest exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
    pairs = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        flaky = case.find("flakyFailure")
        match = ATTEMPT.search(flaky.get("type", "")) if flaky is not None else None
        if match is None:
            sys.exit(f"{mode}: {case.get('name')} has no flaky attempt in junit.xml")
        first = float(match.group(1))
        pairs.append((first, float(case.get("time")) - first))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tests", type=int, default=20)
    parser.add_argument("--world-size", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        suite, state = Path(work) / "suite", Path(work) / "state"
        suite.mkdir(), state.mkdir()
        (suite / "test_retry.py").write_text(SUITE)
        print(f"{args.tests} tests failing their first attempt, world size {args.world_size}, cpu/gloo")
        print(f"{'mode':6} {'first attempt':>14} {'second attempt':>15} {'second - first':>15}")
        for mode in ("off", "on"):
            pairs = run_mode(mode, suite, state, args.tests, args.world_size)
            first = statistics.median(p[0] for p in pairs)
            second = statistics.median(p[1] for p in pairs)
            label = {"off": "fork", "on": "reuse"}[mode]
            delta = (second - first) * 1e3
            print(f"{label:6} {first * 1e3:11.1f} ms {second * 1e3:12.1f} ms {delta:+12.1f} ms")


if __name__ == "__main__":
    main()
