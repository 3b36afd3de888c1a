"""Host cost per collective of the plugin's collective trace (pytest_plugin/desync/collective_trace.py).

Two measurements, each with and without the trace, alternated so that drifting load hits both alike:

1. torch's "fake" process group (one rank, collectives return at once): the trace's own cost, nothing else.
   `dist.all_reduce` (the wrapper, then the group's method, then Work.wait) and the group's method called
   directly with its Work waited (the path communicators/group_calls.py takes).
2. A real one-rank gloo group (`--gloo`), where the call itself costs tens of microseconds, with torch's
   Flight Recorder (TORCH_FR_BUFFER_SIZE) beside it for comparison: each variant in a fresh process, since
   the recorder is switched on when the group is created.

    python benchmarks/harness/collective_trace_overhead.py [--calls 20000] [--repeats 7] [--gloo]

Prints the best-of-repeats microseconds per call (CPU time of the process) and the difference.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist

from harness.pytest_plugin.desync import collective_trace


class TraceSwitch:
    """Installs the trace once, then swaps torch's original methods and the traced ones back and forth."""

    def __init__(self, path: Path) -> None:
        # The class's own entries: getattr would give pybind's unbound functions, which do not bind `self`.
        wrapped = [(cls, name) for cls, names in collective_trace.wrapped_methods().items() for name in names]
        original = {(cls, name): vars(cls)[name] for cls, name in wrapped}
        collective_trace.set_trace_path(path)
        collective_trace.start_test(True)
        self._traced = {(cls, name): vars(cls)[name] for cls, name in wrapped}
        self._original = original

    def set(self, on: bool) -> None:
        for (cls, name), method in (self._traced if on else self._original).items():
            setattr(cls, name, method)


def per_call_us(call: Callable[[], object], calls: int, repeats: int) -> float:
    # CPU time of this process, not wall time: on a shared machine the wall clock also counts the time the
    # process waits for a core, which says nothing of what the trace costs.
    timer = timeit.Timer(call, timer=time.process_time)
    return min(timer.repeat(number=calls, repeat=repeats)) / calls * 1e6


def fake_group(calls: int, repeats: int) -> None:
    from torch.testing._internal.distributed.fake_pg import FakeStore

    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=2)
    group = dist.group.WORLD
    tensor = torch.ones(1024)
    options = dist.AllreduceOptions()

    def direct() -> None:
        group.allreduce([tensor], options).wait()

    cases = {"dist.all_reduce": lambda: dist.all_reduce(tensor), "group.allreduce + wait": direct}
    with tempfile.TemporaryDirectory() as workdir:
        switch = TraceSwitch(Path(workdir) / "rank0.trace")
        print(f"fake group, {calls} calls x {repeats} repeats")
        print(f"{'call':<26}{'untraced':>12}{'traced':>12}{'difference':>13}")
        for name, call in cases.items():
            times = {False: [], True: []}
            for on in (False, True, False, True):
                switch.set(on)
                times[on].append(per_call_us(call, calls, repeats))
            off_us, on_us = min(times[False]), min(times[True])
            print(f"{name:<26}{off_us:>9.2f} us{on_us:>9.2f} us{on_us - off_us:>+10.2f} us")
        switch.set(False)
    dist.destroy_process_group()


def gloo_variant(variant: str, calls: int, repeats: int) -> float:
    """One variant on a one-rank gloo group, in this process: microseconds per dist.all_reduce."""
    with tempfile.TemporaryDirectory() as workdir:
        if variant == "trace":
            collective_trace.set_trace_path(Path(workdir) / "rank0.trace")
            collective_trace.start_test(True)
        store = dist.FileStore(os.path.join(workdir, "store"), 1)
        dist.init_process_group("gloo", store=store, rank=0, world_size=1)
        tensor = torch.ones(1024)

        best = per_call_us(lambda: dist.all_reduce(tensor), calls, repeats)
        dist.destroy_process_group()
    return best


def gloo(calls: int, repeats: int) -> None:
    print(f"\none-rank gloo group, dist.all_reduce of 1024 float32, {calls} calls x {repeats} repeats")
    results: dict[str, list[float]] = {"plain": [], "trace": [], "flight recorder": []}
    for _ in range(2):
        for variant in results:
            env = dict(os.environ)
            if variant == "flight recorder":
                env["TORCH_FR_BUFFER_SIZE"] = "2000"
            command = [sys.executable, __file__, "--gloo-variant", variant, "--calls", str(calls)]
            done = subprocess.run(
                [*command, "--repeats", str(repeats)], env=env, capture_output=True, text=True, check=True
            )
            results[variant].append(json.loads(done.stdout.strip().splitlines()[-1]))
    plain = min(results["plain"])
    for variant, times in results.items():
        print(f"{variant:<18}{min(times):>9.2f} us{min(times) - plain:>+10.2f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--gloo", action="store_true", help="also time a one-rank gloo group")
    parser.add_argument("--gloo-variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.gloo_variant:
        print(json.dumps(gloo_variant(args.gloo_variant, args.calls, args.repeats)))
        return
    fake_group(args.calls, args.repeats)
    if args.gloo:
        gloo(args.calls // 10, args.repeats)


if __name__ == "__main__":
    main()
