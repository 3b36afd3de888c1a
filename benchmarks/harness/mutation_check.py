"""Planted bugs: how many realistic one-line mutations of communicators/ the conformance suite catches.

Each mutation replaces one line of communicators/ (a wrong row offset, dim, default peer, reduction, dtype,
backend-table entry, ...) in a temporary copy of the tree, runs the conformance suite

    python -m pytest tests/communicators/test_*.py --dist-world-size N -x -q -p no:cacheprovider

(its files in FAST_FIRST order) there for every world size asked for, `--jobs` runs at a time, and
counts the mutation as killed at N when that run fails (a hang counts too: the plugin's --dist-timeout
turns it into a failure). The real tree is never modified. The unmutated copy must pass first, or the
counts would mean nothing.

    python benchmarks/harness/mutation_check.py                       # ws 2, 3, 4, every mutation
    python benchmarks/harness/mutation_check.py --repo /work/main     # the suite of another checkout
    python benchmarks/harness/mutation_check.py --world-sizes 3 --only recv_default_peer --json out.json
    python benchmarks/harness/mutation_check.py --suite-from /tmp/old --jobs 4   # an older suite, same code

`--suite-from` takes tests/communicators from another checkout (e.g. `git worktree add /tmp/old REV`) and
runs it against this checkout's code and mutations: the kill rate of two suites on the same bugs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Mutation:
    """Replace `before` (found exactly once in `path`) by `after`: one realistic bug."""

    name: str
    path: str
    before: str
    after: str
    what: str


MUTATIONS = (
    # -- the backend table and its resolution
    Mutation(
        "alias_target",
        "communicators/backends.py",
        'All2AllBackendEntry("flashinfer_all2allv", "alias", target="flashinfer_nvlink_two_sided")',
        'All2AllBackendEntry("flashinfer_all2allv", "alias", target="flashinfer_nvlink_one_sided")',
        "a deprecated alias points at the wrong backend",
    ),
    Mutation(
        "backend_library",
        "communicators/backends.py",
        'All2AllBackendEntry("deepep_low_latency", "backend", platforms=_CUDA_ONLY, library="deep_ep")',
        'All2AllBackendEntry("deepep_low_latency", "backend", platforms=_CUDA_ONLY, library="deepep")',
        "a backend needs a misspelt library",
    ),
    Mutation(
        "removed_warning_class",
        "communicators/resolution.py",
        "        category = RemovedAll2AllBackendWarning",
        "        category = All2AllBackendFallbackWarning",
        "a removed backend warns with the generic fallback class",
    ),
    Mutation(
        "fallback_text",
        "communicators/resolution.py",
        'notices.append((category, f"{reason}; on {platform} falling back to {DEFAULT_ALL2ALL_BACKEND!r}."))',
        'notices.append((category, f"{reason}; falling back to {DEFAULT_ALL2ALL_BACKEND!r}."))',
        "the fallback warning no longer names the platform",
    ),
    # -- in-place semantics, reduction, roots and peers
    Mutation(
        "all_reduce_not_in_place",
        "communicators/base.py",
        "        out = input_.contiguous()\n        self._calls.all_reduce(out)",
        "        out = input_.clone()\n        self._calls.all_reduce(out)",
        "all_reduce silently no longer in place",
    ),
    Mutation(
        "reduce_overwrites",
        "communicators/cpu.py",
        "            own.add_(received[slot])",
        "            own.copy_(received[slot])",
        "reduce-scatter keeps one peer's block instead of the sum",
    ),
    Mutation(
        "reduce_first_peer_only",
        "communicators/cpu.py",
        "            own.add_(received[slot])",
        "            own.add_(received[0])",
        "reduce-scatter sums the first peer's block again and again",
    ),
    Mutation(
        "broadcast_root_ignored",
        "communicators/base.py",
        "        self._calls.broadcast(out, src)",
        "        self._calls.broadcast(out, 0)",
        "broadcast always from rank 0",
    ),
    Mutation(
        "broadcast_options_cache",
        "communicators/group_calls.py",
        "        options = self._broadcast_options.get(src)",
        "        options = self._broadcast_options.get(0)",
        "broadcast reuses the options of another root",
    ),
    Mutation(
        "recv_default_peer",
        "communicators/base.py",
        "        src = (self.rank - 1) % self.world_size if src is None else src",
        "        src = (self.rank + 1) % self.world_size if src is None else src",
        "recv() without src receives from the next rank",
    ),
    Mutation(
        "send_default_peer",
        "communicators/base.py",
        "        dst = (self.rank + 1) % self.world_size if dst is None else dst",
        "        dst = (self.rank - 1) % self.world_size if dst is None else dst",
        "send() without dst sends to the previous rank",
    ),
    Mutation(
        "gather_default_dim",
        "communicators/base.py",
        "    def gather(self, input_: torch.Tensor, dst: int = 0, dim: int = -1) -> torch.Tensor | None:",
        "    def gather(self, input_: torch.Tensor, dst: int = 0, dim: int = 0) -> torch.Tensor | None:",
        "gather's default dim is 0",
    ),
    Mutation(
        "peer_check_off_by_one",
        "communicators/base.py",
        "        if not 0 <= peer < self.world_size:",
        "        if not 0 <= peer <= self.world_size:",
        "a peer one past the last rank is accepted",
    ),
    # -- row offsets, zero-size ranks, dims
    Mutation(
        "row_start_assumes_equal",
        "communicators/tensor_layout.py",
        "        start=sum(checked[:rank]),",
        "        start=checked[rank] * rank,",
        "a rank's first row computed as if all ranks had as many rows",
    ),
    Mutation(
        "equal_split_ends_only",
        "communicators/tensor_layout.py",
        "        equal=checked.count(checked[0]) == world_size,",
        "        equal=checked[0] == checked[-1],",
        "sizes called equal when the first and last rank agree",
    ),
    Mutation(
        "reduce_scatter_own_block",
        "communicators/cpu.py",
        "        own = rows[split.start : split.start + split.own]",
        "        own = rows[split.start : split.own]",
        "reduce-scatter slices its own block with a wrong end",
    ),
    Mutation(
        "gather_skips_own_rows",
        "communicators/cpu.py",
        "            if split.sizes[peer]:\n                works.append(dist.irecv(",
        "            if split.own:\n                works.append(dist.irecv(",
        "all-gather receives a peer's rows when this rank has rows (zero-size ranks)",
    ),
    Mutation(
        "negative_dim",
        "communicators/tensor_layout.py",
        "    return dim % ndim",
        "    return abs(dim)",
        "a negative dim taken as its absolute value",
    ),
    Mutation(
        "from_rows_inverse",
        "communicators/tensor_layout.py",
        "    return dense(rows.movedim(0, dim))",
        "    return dense(rows.movedim(dim, 0))",
        "rows moved back with the arguments of to_rows",
    ),
    Mutation(
        "xpu_unpad_skipped",
        "communicators/tensor_layout.py",
        "    if min(sizes) == longest:\n        return gathered",
        "    if max(sizes) == longest:\n        return gathered",
        "the padded all-gather never removes its padding",
    ),
    # -- lists, dispatch, combine, empty optional arguments
    Mutation(
        "list_order",
        "communicators/base.py",
        "        return [gathered[i] for i in range(len(rows))]",
        "        return list(gathered.values())",
        "a gathered list comes back with the widest tensor last",
    ),
    Mutation(
        "widest_from_data",
        "communicators/base.py",
        "        widest = max(range(len(rows)), key=lambda i: row_bytes(rows[i]))",
        "        widest = max(range(len(rows)), key=lambda i: rows[i].numel() * rows[i].element_size())",
        "the widest tensor chosen from the data, which zero-size ranks see differently",
    ),
    Mutation(
        "empty_extras",
        "communicators/all2all.py",
        "        if extra_tensors is None:",
        "        if not extra_tensors:",
        "dispatch(..., extra_tensors=[]) returns one item too few",
    ),
    Mutation(
        "router_extras_dropped",
        "communicators/all2all.py",
        "        return self._gather([hidden_states, router_logits], sizes, extra_tensors)",
        "        return self._gather([hidden_states, router_logits], sizes, None)",
        "dispatch_router_logits drops the extra tensors",
    ),
    Mutation(
        "combine_wrong_dim",
        "communicators/all2all.py",
        "        return self.communicator.reduce_scatterv(hidden_states, dim=0, sizes=sizes)",
        "        return self.communicator.reduce_scatterv(hidden_states, sizes=sizes)",
        "combine reduce-scatters along the default dim (-1) instead of tokens",
    ),
    # -- dtype handling and contiguity
    Mutation(
        "gather_dtype_lost",
        "communicators/base.py",
        "gather_list = [torch.empty_like(rows) for _ in range(self.world_size)]",
        "gather_list = [torch.empty(rows.shape) for _ in range(self.world_size)]",
        "gather's receive buffers take the default dtype",
    ),
    Mutation(
        "new_rows_dtype_1d",
        "communicators/tensor_layout.py",
        "        return like.new_empty(count)",
        "        return torch.empty(count, device=like.device)",
        "1-d buffers take the default dtype",
    ),
    Mutation(
        "pack_width_in_elements",
        "communicators/tensor_layout.py",
        "        offset += as_bytes.shape[1]",
        "        offset += flat.shape[1]",
        "packed columns placed by element count, not bytes",
    ),
    Mutation(
        "to_rows_skips_contiguity",
        "communicators/tensor_layout.py",
        "    if dim == 0 and tensor.is_contiguous() and tensor.numel():\n        return tensor\n",
        "    if dim == 0 and tensor.numel():\n        return tensor\n",
        "a non-contiguous dim-0 input goes to the collective as is",
    ),
    Mutation(
        "broadcast_not_contiguous",
        "communicators/base.py",
        "        out = input_.contiguous()\n        self._calls.broadcast(out, src)",
        "        out = input_\n        self._calls.broadcast(out, src)",
        "broadcast of a non-contiguous input",
    ),
)


def copy_tree(source: Path, target: Path) -> None:
    """The files a suite run needs, without caches, the checkout's results/ or the git directory."""
    caches = shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", ".ruff_cache")

    def ignore(directory: str, names: list[str]) -> set[str]:
        # Only the top-level results/ (a run's output, .gitignore's /results/): harness/results/ is code.
        outputs = {"results"} if Path(directory) == source else set()
        return caches(directory, names) | (outputs & set(names))

    shutil.copytree(source, target, ignore=ignore, symlinks=True)


def apply(mutation: Mutation, tree: Path) -> None:
    path = tree / mutation.path
    text = path.read_text()
    count = text.count(mutation.before)
    if count != 1:
        raise SystemExit(
            f"mutation {mutation.name}: {mutation.path} holds its line {count} times, not once; update the "
            "mutation to the code"
        )
    path.write_text(text.replace(mutation.before, mutation.after))


# Test files that run in seconds and catch whole classes of bugs go first: with -x, a killed mutation then
# costs little more than pytest's start. The suite is the same; only the order of its files changes.
FAST_FIRST = (
    "test_backend_resolution.py",
    "test_backend_table.py",
    "test_tensor_layout.py",
    "test_documented_promises.py",
    "test_all2all.py",
    "test_collectives.py",
)


def suite_files(tree: Path) -> list[str]:
    """Every test file of tests/communicators, the fast ones first."""
    names = sorted(path.name for path in (tree / "tests" / "communicators").glob("test_*.py"))
    ordered = [name for name in FAST_FIRST if name in names] + [n for n in names if n not in FAST_FIRST]
    return [f"tests/communicators/{name}" for name in ordered]


def run_suite(tree: Path, world_size: int, timeout_s: float) -> tuple[bool, float, str]:
    """(passed, seconds, last line) of the suite at `world_size` in `tree`."""
    command = [
        sys.executable, "-m", "pytest", *suite_files(tree), "--dist-world-size", str(world_size),
        "-x", "-q", "-p", "no:cacheprovider", "--dist-timeout", str(timeout_s),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    summary = lines[-1] if lines else str(done.stderr.strip().splitlines()[-1:])
    # Which test caught it: pytest's short summary names it.
    failed = [line[:160] for line in lines if line.startswith(("FAILED", "ERROR"))]
    return done.returncode == 0, time.perf_counter() - start, " | ".join([summary, *failed])


def run_mutant(
    pristine: Path, tree: Path, mutation: Mutation, world_size: int, timeout_s: float
) -> tuple[bool, float, str]:
    """`run_suite` on a copy of `pristine` with `mutation` applied; the copy lives only as long as the run,
    so that at most --jobs copies of the tree are on disk at once."""
    copy_tree(pristine, tree)
    try:
        apply(mutation, tree)
        return run_suite(tree, world_size, timeout_s)
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout whose suite and code to mutate")
    parser.add_argument(
        "--suite-from", type=Path, help="checkout whose tests/communicators to run instead of --repo's"
    )
    parser.add_argument("--world-sizes", default="2,3,4", help="comma-separated (default 2,3,4)")
    parser.add_argument("--only", nargs="*", help="mutation names to run (default: all)")
    parser.add_argument("--dist-timeout", type=float, default=60.0, help="per test, seconds (default 60)")
    parser.add_argument("--jobs", type=int, default=1, help="suite runs at a time (each takes N cores)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the unmutated runs (the suite just passed)"
    )
    args = parser.parse_args()
    world_sizes = [int(n) for n in args.world_sizes.split(",")]
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]

    results: dict[str, dict[int, bool]] = {m.name: {} for m in chosen}
    with tempfile.TemporaryDirectory(prefix="mutation-check-") as scratch:
        pristine = Path(scratch) / "pristine"
        copy_tree(args.repo, pristine)
        if args.suite_from is not None:
            shutil.rmtree(pristine / "tests" / "communicators")
            copy_tree(args.suite_from / "tests" / "communicators", pristine / "tests" / "communicators")
        for mutation in chosen:  # every mutation must apply before hours are spent
            probe = Path(scratch) / "probe"
            copy_tree(pristine / "communicators", probe / "communicators")
            apply(mutation, probe)
            shutil.rmtree(probe)
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            baseline = {
                ws: pool.submit(run_suite, pristine, ws, args.dist_timeout)
                for ws in ([] if args.no_baseline else world_sizes)
            }
            for world_size, future in baseline.items():
                passed, seconds, summary = future.result()
                outcome = "passed" if passed else "FAILED"
                print(f"unmutated suite ws{world_size}: {outcome} in {seconds:.0f} s: {summary}", flush=True)
                if not passed:
                    print("the unmutated suite must pass first", file=sys.stderr)
                    return 1
            runs = {
                pool.submit(
                    run_mutant, pristine, Path(scratch) / f"{m.name}-ws{ws}", m, ws, args.dist_timeout
                ): (
                    m,
                    ws,
                )
                for m in chosen
                for ws in world_sizes
            }
            for future in as_completed(runs):
                mutation, world_size = runs[future]
                passed, seconds, summary = future.result()
                results[mutation.name][world_size] = not passed
                verdict = "survived" if passed else "killed"
                line = f"{mutation.name:26} ws{world_size}: {verdict:8} {seconds:5.0f} s  {summary}"
                print(line, flush=True)

    print()
    for world_size in world_sizes:
        killed = sum(results[m.name][world_size] for m in chosen)
        print(f"ws{world_size}: killed {killed} of {len(chosen)} ({100 * killed / len(chosen):.0f} %)")
    everywhere = sum(all(results[m.name].values()) for m in chosen)
    print(f"killed at every world size: {everywhere} of {len(chosen)}")
    survivors = [f"{m.name} ({m.what})" for m in chosen if not all(results[m.name].values())]
    if survivors:
        print("survivors:\n  " + "\n  ".join(survivors))
    if args.json:
        suite = str(args.suite_from or args.repo)
        report = {"repo": str(args.repo), "suite": suite, "results": results}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
