"""Per-test cost of trivial distributed tests: torch's MultiProcessTestCase vs the plugin (fork, reuse modes).

Each variant is a real pytest run over N generated tests whose body is one all_reduce; the per-test time is
the duration pytest reports for each test (setup + call + teardown, as JUnit's `time`, but not rounded to the
millisecond), and the figure is its median. Plain, non-distributed
tests in the same run give pytest's own per-test floor.

    python benchmarks/harness/plugin_overhead.py                        # CPU, gloo, world size 4
    python benchmarks/harness/plugin_overhead.py --device cuda --world-size 4 --no-mptc
    python benchmarks/harness/plugin_overhead.py --variants reuse --fixtures --plugin-from /tmp/main-checkout
    python benchmarks/harness/plugin_overhead.py --variants reuse --fixtures --rounds 3 \
        --plugin-from /tmp/before --plugin-from .
    python benchmarks/plugin_overhead.py --variants reuse --fixtures --rounds 3 \
        --baseline-ref 68ac6e6 --baseline-ref main

`--fixtures` gives every test what real suites have: numpy and hypothesis imported, an autouse fixture that
sets an environment variable through monkeypatch, a seeded torch RNG and tmp_path; `--plugin-from` measures
another checkout's plugin (the code before a change) with this script, and `--baseline-ref` the plugin of a
git revision of this repository (its `harness/` exported to the run's temporary folder), next to this
checkout's. Given two checkouts or more, they run side by side in one run, alternating round by round
(`--rounds`), so that a machine's changing load falls on all; the table ends with each checkout's median over
the rounds.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# Multicast/NVLS set-up fails on the lent H200 machines; every process the benchmark starts gets these.
GPU_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}

PLUGIN_TESTS = """
import torch, torch.distributed as dist

WORLD_SIZE = {world_size}

{fixtures}
{tests}
"""
# What each test gets with --fixtures: the set-up of an ordinary suite, all of which reuse mode carries.
FIXTURES = """
import hypothesis, numpy, pytest  # what the watch of reuse mode has to look over


@pytest.fixture(autouse=True)
def suite_env(monkeypatch, tmp_path):
    monkeypatch.setenv("BENCH_SUITE_FLAG", "1")
    torch.manual_seed(0)
"""
PLUGIN_TEST = """
def test_all_reduce_{i}(dist_env):
    t = torch.ones(4, device=dist_env.device)
    dist.all_reduce(t, group=dist_env.group)
    assert t[0].item() == WORLD_SIZE


def test_plain_{i}():
    assert torch.ones(4)[0].item() == 1
"""

# Loaded with -p in every run: each test's setup + call + teardown durations, unrounded, in run order. Named
# pytest_*: reuse mode's module watch leaves pytest's plugins alone, so it costs the same in every checkout.
TIMES_PLUGIN = """
import json, os

_durations = {}


def pytest_runtest_logreport(report):
    _durations[report.nodeid] = _durations.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session):
    with open(os.environ["PLUGIN_OVERHEAD_DURATIONS"], "w") as out:
        json.dump(_durations, out)
"""

MPTC_TESTS = """
import torch, torch.distributed as dist
from torch.testing._internal.common_distributed import MultiProcessTestCase

DEVICE, BACKEND, WORLD_SIZE = {device!r}, {backend!r}, {world_size}


class AllReduceTest(MultiProcessTestCase):
    @property
    def world_size(self):
        return WORLD_SIZE

    def setUp(self):
        super().setUp()
        self._spawn_processes()

    def all_reduce_once(self):
        if DEVICE == "cuda":
            torch.cuda.set_device(self.rank)
        store = dist.FileStore(self.file_name, WORLD_SIZE)
        dist.init_process_group(BACKEND, store=store, rank=self.rank, world_size=WORLD_SIZE)
        t = torch.ones(4, device=DEVICE)
        dist.all_reduce(t)
        assert t[0].item() == WORLD_SIZE
        dist.destroy_process_group()


for _i in range({count}):
    setattr(AllReduceTest, f"test_all_reduce_{{_i}}", AllReduceTest.all_reduce_once)
"""


@dataclass
class Figures:
    """Per-test times of one variant."""

    variant: str
    tests: int
    median_s: float
    first_s: float
    max_s: float
    plain_median_s: float | None
    wall_s: float
    # User + system CPU time of pytest and its ranks for the whole run: less swayed by a loaded machine's
    # waiting than the per-test times, and it counts the ranks' work that overlaps the next test's set-up.
    cpu_s: float


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", choices=["cpu", "cuda", "xpu"], default="cpu")
    parser.add_argument("--world-size", type=int, default=4)
    parser.add_argument("--fork-tests", type=int, default=20, help="tests per plugin fork-mode run")
    parser.add_argument("--reuse-tests", type=int, default=100, help="tests per plugin reuse-mode run")
    parser.add_argument("--mptc-tests", type=int, default=4, help="tests under MultiProcessTestCase (slow)")
    parser.add_argument("--no-mptc", action="store_true", help="skip MultiProcessTestCase")
    parser.add_argument(
        "--variants",
        choices=["all", "reuse", "fork"],
        default="all",
        help="plugin modes to run (reuse: reuse mode only, without and with --forked). Default: all.",
    )
    parser.add_argument("--fixtures", action="store_true", help="give each test an ordinary suite's fixtures")
    parser.add_argument(
        "--plugin-from",
        type=Path,
        action="append",
        help="checkout whose harness package (plugin) is measured; repeat to compare. Default: this one.",
    )
    parser.add_argument(
        "--baseline-ref",
        action="append",
        default=[],
        help="git revision whose plugin runs beside this checkout's (or --plugin-from's); repeatable",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="runs of each variant per checkout, alternating"
    )
    parser.add_argument("--json", type=Path, default=Path("results/plugin_overhead.json"))
    args = parser.parse_args()
    backend = {"cpu": "gloo", "cuda": "nccl", "xpu": "xccl"}[args.device]
    dist_args = [f"--dist-device={args.device}", f"--dist-world-size={args.world_size}"]
    figures: list[Figures] = []
    with tempfile.TemporaryDirectory(prefix="plugin-overhead-") as workdir:
        work = Path(workdir)
        roots = {ref: _export_revision(ref, work / "revisions") for ref in args.baseline_ref}
        roots.update({_label(root): root.resolve() for root in args.plugin_from or [REPO_ROOT]})
        if not args.no_mptc and args.variants == "all":
            (work / "test_mptc.py").write_text(
                MPTC_TESTS.format(
                    device=args.device, backend=backend, world_size=args.world_size, count=args.mptc_tests
                )
            )
            figures.append(_run(work, "MultiProcessTestCase", "test_mptc.py", [], plugin_from=None))
        variants = (
            ("plugin, fork mode", args.fork_tests, ["--dist-reuse=off"]),
            ("plugin, fork mode, --forked", args.fork_tests, ["--dist-reuse=off", "--forked"]),
            ("plugin, reuse mode", args.reuse_tests, ["--dist-reuse=on"]),
            ("plugin, reuse mode, --forked", args.reuse_tests, ["--dist-reuse=on", "--forked"]),
        )
        for variant, count, extra in variants:
            if args.variants != "all" and f"{args.variants} mode" not in variant:
                continue
            if "--forked" in extra and importlib.util.find_spec("pytest_forked") is None:
                print(f"{variant}: skipped, pytest-forked is not installed")
                continue
            name = f"test_plugin_{count}.py"
            tests = "".join(PLUGIN_TEST.format(i=i) for i in range(count))
            fixtures = FIXTURES if args.fixtures else ""
            (work / name).write_text(
                PLUGIN_TESTS.format(world_size=args.world_size, fixtures=fixtures, tests=tests)
            )
            for _ in range(args.rounds):
                for checkout, root in roots.items():
                    label = f"{variant} @{checkout}" if len(roots) > 1 else variant
                    figures.append(_run(work, label, name, [*dist_args, *extra], root))
    _print_table(args, figures)
    if len(roots) > 1 or args.rounds > 1:
        _print_side_by_side(figures)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "device": args.device,
                "backend": backend,
                "fixtures": args.fixtures,
                "plugin_from": {checkout: str(root) for checkout, root in roots.items()},
                "rounds": args.rounds,
                "world_size": args.world_size,
                "cpus": os.cpu_count(),
                "load_average": os.getloadavg(),
                "figures": [asdict(f) for f in figures],
            },
            indent=2,
        )
    )
    print(f"\nwritten: {args.json}")
    return 0


def _run(work: Path, variant: str, test_file: str, extra: list[str], plugin_from: Path | None) -> Figures:
    """One pytest run; `plugin_from`: the checkout whose plugin it loads (None: no plugin)."""
    durations = work / f"{test_file}.durations.json"
    (work / "pytest_plugin_overhead_times.py").write_text(TIMES_PLUGIN)
    root = plugin_from or REPO_ROOT
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    env["PLUGIN_OVERHEAD_DURATIONS"] = str(durations)
    for key, value in GPU_ENV.items():
        env.setdefault(key, value)
    command = [
        sys.executable,
        "-m",
        "pytest",
        test_file,
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "pytest_plugin_overhead_times",
    ]
    if plugin_from is not None and not _plugin_installed():
        command += ["-p", "harness.pytest_plugin.plugin"]
    started, cpu_before = time.monotonic(), _children_cpu_s()
    done = subprocess.run([*command, *extra], cwd=work, env=env, capture_output=True, text=True)
    wall, cpu = time.monotonic() - started, _children_cpu_s() - cpu_before
    if done.returncode != 0:
        sys.exit(
            f"{variant}: pytest failed (exit {done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    dist_times, plain_times = [], []
    for nodeid, seconds in json.loads(durations.read_text()).items():
        (plain_times if "::test_plain" in nodeid else dist_times).append(seconds)
    return Figures(
        variant=variant,
        tests=len(dist_times),
        median_s=statistics.median(dist_times),
        first_s=dist_times[0],
        max_s=max(dist_times),
        plain_median_s=statistics.median(plain_times) if plain_times else None,
        wall_s=wall,
        cpu_s=cpu,
    )


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _export_revision(ref: str, under: Path) -> Path:
    """`harness/` as it is at git revision `ref`, written under `under` (no worktree is registered)."""
    commit = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if commit.returncode != 0:
        sys.exit(f"--baseline-ref {ref}: not a revision of {REPO_ROOT}: {commit.stderr.strip()}")
    root = under / commit.stdout.strip()
    root.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", "--format=tar", commit.stdout.strip(), "harness"],
        capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True)
    return root


def _label(root: Path) -> str:
    return "this checkout" if root.resolve() == REPO_ROOT else root.resolve().name


def _plugin_installed() -> bool:
    return any(ep.name == "comm_harness" for ep in importlib.metadata.entry_points(group="pytest11"))


def _print_table(args: argparse.Namespace, figures: list[Figures]) -> None:
    print(f"\nTrivial all_reduce tests, {args.device}, world size {args.world_size} (time per test)\n")
    header = (
        f"{'variant':32} {'tests':>5} {'median':>10} {'first':>10} {'max':>10} {'plain test':>11} {'wall':>8}"
    )
    print(header)
    print("-" * len(header))
    for f in figures:
        plain = f"{f.plain_median_s * 1e3:8.1f} ms" if f.plain_median_s is not None else f"{'-':>11}"
        print(
            f"{f.variant:32} {f.tests:5d} {f.median_s * 1e3:7.1f} ms {f.first_s * 1e3:7.1f} ms "
            f"{f.max_s * 1e3:7.1f} ms {plain} {f.wall_s:6.1f} s"
        )
    by_variant = {f.variant: f for f in figures}
    fork, reuse = by_variant.get("plugin, fork mode"), by_variant.get("plugin, reuse mode")
    if fork is not None:
        if "MultiProcessTestCase" in by_variant:
            ratio = by_variant["MultiProcessTestCase"].median_s / fork.median_s
            print(f"\nfork mode vs MultiProcessTestCase: {ratio:.0f}x faster per test (target: 40x)")
        print(f"fork mode median: {fork.median_s * 1e3:.1f} ms (aim: under 100 ms on CPU)")
    if reuse is None:
        return
    overhead = reuse.median_s - (reuse.plain_median_s or 0.0)
    print(
        f"reuse mode median: {reuse.median_s * 1e3:.1f} ms, {overhead * 1e3:.1f} ms over a plain pytest test"
    )


def _print_side_by_side(figures: list[Figures]) -> None:
    """Each variant's median per-test time over its rounds (the median of the runs' medians), and its CPU
    time per distributed test (the median over the rounds of a run's CPU time over its distributed tests,
    start-up and plain tests included: what differs between checkouts is theirs)."""
    runs: dict[str, list[Figures]] = {}
    for f in figures:
        runs.setdefault(f.variant, []).append(f)
    print("\nOver the rounds (median of the runs' medians, each run's median; CPU per test, in ms):")
    for variant, each in runs.items():
        medians = ", ".join(f"{f.median_s * 1e3:.1f}" for f in each)
        median = statistics.median(f.median_s for f in each) * 1e3
        cpu = statistics.median(f.cpu_s / f.tests for f in each)
        print(f"  {variant:44} {median:7.1f} ms   ({medians})   CPU {cpu * 1e3:6.1f} ms")


if __name__ == "__main__":
    sys.exit(main())
