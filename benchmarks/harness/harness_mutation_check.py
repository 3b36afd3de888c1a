"""Planted bugs in the harness itself: how many realistic one-line mutations of the code that decides
whether a cell passed (judging, merging, strict mode, timeouts, containment, clean-up, reuse state, the
desync verdict, and the GPU-only logic of the uneven collectives) the tests catch.

The counterpart of mutation_check.py (whose Mutation, copy and apply it uses) for harness/. Each mutation
names the test files of the everyday tier that cover the code it changes; the script copies the tree,
applies one mutation, runs those files

    python -m pytest FILES -x -q -p no:cacheprovider          (-m e2e for an e2e mutation)

`--jobs` copies at a time, and counts the mutation as killed when that run fails. The real tree is never
modified, and the unmutated files must pass first. A mutation marked e2e can only be shown end to end (its
`why_e2e` says why); the rest must be killed by the everyday tier.

    python benchmarks/harness/harness_mutation_check.py                          # every mutation
    python benchmarks/harness/harness_mutation_check.py --only merge_keeps_older --json out.json
    python benchmarks/harness/harness_mutation_check.py --suite-from /tmp/old    # an older tests/, same code
    python benchmarks/harness/harness_mutation_check.py --whole-tier            # the everyday tier per mutant

`--suite-from` takes tests/ from another checkout (`git worktree add /tmp/old REV`): the kill rate of that
suite on the same bugs (test files it lacks are left out; a mutation with none left survives).
`--whole-tier` runs the whole everyday tier (`python -m pytest -x`) instead of the named files: slower, and
the honest answer to "does any everyday test catch it".
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutation_check import REPO, Mutation, apply, copy_tree  # noqa: E402  (a script beside this one)

JUDGING = ("tests/harness/test_verdicts.py", "tests/harness/test_scheduler_and_results.py",
           "tests/harness/test_results_safety.py")  # fmt: skip
MERGING = ("tests/harness/test_verdicts.py", "tests/harness/test_scheduler_and_results.py",
           "tests/harness/test_hostile_reports.py",
           "tests/github/test_annotations_and_markdown.py")  # fmt: skip
GUARDIAN = ("tests/harness/test_run_guardian.py", "tests/harness/test_cell_cleanup.py",
            "tests/harness/test_containment.py")  # fmt: skip
RANKS = ("tests/plugin/test_rank_processes.py", "tests/plugin/test_plugin_scenarios.py")
REUSE = ("tests/plugin/test_worker_state.py", "tests/plugin/test_plugin_carried_state.py")
DESYNC = ("tests/plugin/test_desync_verdict.py",)
PEER = ("tests/communicators/test_peer_memory_stand_in.py", "tests/communicators/test_uneven_ways.py")


@dataclass(frozen=True)
class HarnessMutation(Mutation):
    """A mutation, the test files that should kill it, and why only e2e can (empty: the everyday tier)."""

    tests: tuple[str, ...] = ()
    why_e2e: str = ""


M = HarnessMutation
MUTATIONS = (
    # -- judging a cell from its exit code and junit.xml
    M("nonzero_exit_clean_junit_passes", "harness/results/cell_dir.py",
      "    elif counts.failed or counts.errors or exit_code not in _passing_exit_codes(counts):",
      "    elif counts.failed or counts.errors:",
      "a runner killed after writing a clean junit.xml is judged passed", JUDGING),
    M("errors_do_not_fail", "harness/results/cell_dir.py",
      "    elif counts.failed or counts.errors or exit_code not in _passing_exit_codes(counts):",
      "    elif counts.failed or exit_code not in _passing_exit_codes(counts):",
      "a junit.xml listing errors does not fail the cell", JUDGING),
    M("error_cases_not_counted", "harness/results/junit.py",
      "    counts.errors += errors\n",
      "",
      "<error> testcases are not counted", JUDGING),
    M("error_cases_counted_as_passed", "harness/results/junit.py",
      "    counts.passed += max(0, tests - failures - errors - skipped)",
      "    counts.passed += max(0, tests - failures - skipped)",
      "<error> testcases are also counted as passed", JUDGING),
    M("error_cases_not_listed", "harness/results/junit.py",
      '        for problem in [*case.findall("failure"), *case.findall("error")]:',
      '        for problem in case.findall("failure"):',
      "<error> testcases are not listed among the failures", JUDGING),
    M("not_run_from_progress_only", "harness/results/cell_dir.py",
      "        counts.not_run = max(0, progress.collected - max(progress.finished, counts.total))",
      "        counts.not_run = max(0, progress.collected - progress.finished)",
      "tests junit.xml says finished are counted as never run", JUDGING),
    M("no_tests_collected_passes", "harness/results/cell_dir.py",
      '    5: "pytest collected no tests (check the cell\'s tests, markers and keyword)",\n',
      "",
      "a cell that collected no tests passes", JUDGING),
    # -- merging results of several machines
    M("merge_keeps_older", "harness/results/merge.py",
      "                elif ran_before:\n",
      "                if ran_before:\n",
      "of two runs of a cell the merge keeps the older", MERGING),
    M("merge_skip_beats_run", "harness/results/merge.py",
      "                elif ran_before:\n",
      "                elif ran_now:\n",
      "a skipped copy of a cell replaces one that ran", MERGING),
    M("missing_cell_not_an_error", "harness/results/merge.py",
      '    return CellResult.of_cell(cell, "error", MISSING_REASON, missing=True)',
      '    return CellResult.of_cell(cell, "skipped", MISSING_REASON, missing=True)',
      "a cell found in no input is reported skipped", MERGING),
    M("bench_failure_not_in_exit_code", "harness/results/merge.py",
      "    if exit_code in (EXIT_OK, EXIT_NO_TESTS) and any(outcome.failed for outcome in bench):",
      "    if exit_code in (EXIT_OK, EXIT_NO_TESTS) and any(outcome.error for outcome in bench):",
      "a bandwidth floor missed does not fail the merged report (only a bench that errored does)", MERGING),
    M("floor_bound_inverted", "harness/bench/floors.py",
      'missed = measured < floor.value if BOUNDS[floor.bound] == "min" else measured > floor.value',
      'missed = measured > floor.value if BOUNDS[floor.bound] == "min" else measured < floor.value',
      "a figure above its minimum is said to miss it", ("tests/bench/test_floors.py",)),
    # -- the matrix: include precedence
    M("include_loses_to_device", "harness/config/matrix.py",
      "            draft.settings = _merge_settings(draft.settings, entry)",
      "            draft.settings = _merge_settings(entry, draft.settings)",
      "an include entry's settings lose to its device's", ("tests/harness/test_matrix.py",)),
    M("include_updates_included_cells", "harness/config/matrix.py",
      "        targets = [d for d in drafts[:expanded] if _matches(entry, d)]",
      "        targets = [d for d in drafts if _matches(entry, d)]",
      "an include entry updates a cell an earlier include added instead of adding its own",
      ("tests/harness/test_matrix.py",)),
    # -- exit codes and --strict
    M("strict_before_interrupt", "harness/results/report.py",
      "    if interrupted:\n        return EXIT_INTERRUPTED\n"
      '    if strict and any(c.required and c.status in NOT_RUN_STATUSES for c in cells):\n'
      "        return EXIT_STRICT\n",
      '    if strict and any(c.required and c.status in NOT_RUN_STATUSES for c in cells):\n'
      "        return EXIT_STRICT\n    if interrupted:\n        return EXIT_INTERRUPTED\n",
      "Ctrl-C of `run --strict` exits 3, not 130", JUDGING),
    M("strict_ignores_required", "harness/results/report.py",
      '    if strict and any(c.required and c.status in NOT_RUN_STATUSES for c in cells):',
      '    if strict and any(c.status in NOT_RUN_STATUSES for c in cells):',
      "--strict fails on optional cells that did not run", JUDGING),
    # -- timeouts
    M("per_test_timeout_is_cells", "harness/cell/runner.py",
      "            options.TIMEOUT: cell.test_timeout_s,",
      "            options.TIMEOUT: cell.timeout_s,",
      "each test gets the cell's timeout instead of the per-test one",
      ("tests/harness/test_verdicts.py", "tests/harness/test_cell_environment.py",
       "tests/harness/test_matrix.py")),
    M("matrix_test_timeout_from_timeout", "harness/config/matrix.py",
      '        test_timeout_s=float(settings["test_timeout"]),',
      '        test_timeout_s=float(settings["timeout"]),',
      "the matrix's test_timeout is read from its cell timeout", ("tests/harness/test_matrix.py",)),
    M("timeout_named_as_failure", "harness/pytest_plugin/rank_processes.py",
      "            if stop_at >= deadline:",
      "            if stop_at > deadline:",
      "ranks running at --dist-timeout are said to be stopped after a rank that never ended", RANKS),
    M("still_running_wrong_rank", "harness/pytest_plugin/rank_processes.py",
      'what = f"still running {grace_s:g} s after rank {first_trouble} ended; stopped"',
      'what = f"still running {grace_s:g} s after rank {rank} ended; stopped"',
      '"still running N s after rank R ended" names the last rank that ended, not the first', RANKS),
    M("grace_from_last_failure", "harness/pytest_plugin/rank_processes.py",
      "                if trouble and first_trouble is None:",
      "                if trouble:",
      "every failing rank restarts the others' grace period and takes the blame", RANKS),
    # -- containment and clean-up
    M("guardian_filter_key", "harness/running/containers.py",
      '    return _listed(client, {"label": f"{LABEL_RUN}={run_id}"})',
      '    return _listed(client, {"labels": f"{LABEL_RUN}={run_id}"})',
      "the run's container filter key misspelt: the guardian removes nothing", GUARDIAN),
    M("guardian_label_value", "harness/running/containers.py",
      '    return _listed(client, {"label": f"{LABEL_RUN}={run_id}"})',
      '    return _listed(client, {"label": LABEL_RUN})',
      "the guardian removes every run's containers, not only its own", GUARDIAN),
    M("removal_in_progress_raised", "harness/running/containers.py",
      '        if "already in progress" not in str(error):',
      '        if True:',
      "a container whose removal Docker already runs fails the clean-up (docker-py's race)", GUARDIAN),
    M("removal_stops_at_first_error", "harness/running/containers.py",
      "        except Exception as error:  # an APIError, or the engine went away: try the others\n"
      "            errors.append(error)\n",
      "        except Exception:\n            raise\n",
      "one container the engine fails to remove keeps the rest of the run's", GUARDIAN),
    M("run_id_not_in_cell_env", "harness/running/executors/local.py",
      "        env[RUN_ID_ENV] = run_id\n",
      "        pass\n",
      "local cells do not carry the run id: a dead harness's cells are never found", GUARDIAN),
    M("leftovers_outside_the_group", "harness/running/executors/local.py",
      "    others = {p.pid: p for p in [*_group_members(process.pid), *descendants] if p.pid != process.pid}",
      "    others = {p.pid: p for p in _group_members(process.pid) if p.pid != process.pid}",
      "a cell's processes that left its process group outlive it", GUARDIAN),
    # -- reuse mode's state between tests
    M("reuse_keeps_added_variables", "harness/pytest_plugin/reuse/worker_state.py",
      "        for name in [name for name in environ if name not in self._environ]:\n"
      "            del environ[name]\n",
      "",
      "variables a test body set leak into the next test on the worker", REUSE),
    M("reuse_keeps_changed_values", "harness/pytest_plugin/reuse/worker_state.py",
      "            if environ.get(name) != value:",
      "            if name not in environ:",
      "values a test body changed leak into the next test on the worker", REUSE),
    M("reuse_keeps_sys_path", "harness/pytest_plugin/reuse/worker_state.py",
      "        if sys.path != self._sys_path:\n            sys.path[:] = self._sys_path\n",
      "",
      "sys.path entries a test body added leak into the next test", REUSE),
    # -- the desync verdict
    M("desync_local_rank_numbers", "harness/pytest_plugin/launcher.py",
      "None if trace is None else dataclasses.replace(trace, rank=here[trace.rank])",
      "None if trace is None else trace",
      "on node k > 0 the desync verdict names node 0's ranks",
      ("tests/plugin/test_plugin_nodes.py::test_a_desync_on_node_1_of_two_names_that_nodes_global_ranks",),
      "it needs two pytest processes, one per node, meeting through a TCPStore (20 s); the renumbering is "
      "one line inside the fork launcher, which needs a pytest item and forked ranks"),
    M("desync_reference_tie", "harness/pytest_plugin/desync/desync_verdict.py",
      "    return max(sides, key=lambda side: (len(sides[side]), -min(sides[side])))",
      "    return max(sides, key=lambda side: (len(sides[side]), min(sides[side])))",
      "on a tie the verdict takes the highest rank's call as the reference", DESYNC),
    M("desync_forgotten_is_missing", "harness/pytest_plugin/desync/desync_verdict.py",
      "        absent = sorted(rank for rank in by_rank if last_seq[rank] < seq)",
      "        absent = sorted(rank for rank in by_rank if seq not in by_rank[rank])",
      "a rank whose ring forgot an old call is said never to have entered it", DESYNC),
    # -- GPU-only logic of the uneven collectives
    M("list_way_gather_tables", "communicators/uneven_rows.py",
      "        table = self.list_two_ranks if world_size == 2 else self.list_more_ranks",
      "        table = self.gather_two_ranks if world_size == 2 else self.gather_more_ranks",
      "list_way reads the all-gather tables", PEER),
    M("peer_memory_no_agreement", "communicators/peer_memory.py",
      "    return all(_from_every_rank(group, verdict))",
      "    return verdict",
      "each rank decides alone whether peer memory is usable", PEER),
    M("peer_memory_rank_without_facts", "communicators/peer_memory.py",
      "    if facts is None or any(each is None for each in everyone):",
      "    if facts is None:",
      "a peer without peer memory is taken for one with it", PEER),
    M("peer_memory_across_nodes", "communicators/peer_memory.py",
      '        "node": (socket.gethostname(), os.environ.get("NCCL_HOSTID", "")),',
      '        "node": socket.gethostname(),',
      "emulated nodes of one host share peer memory", PEER),
    M("peer_push_cache_without_dtypes", "communicators/uneven_rows.py",
      "    key = (split.sizes, signature, base)",
      "    key = (split.sizes, tuple(rows.shape for rows in tensors), base)",
      "the peer push's layout cache is keyed without dtypes", PEER),
)  # fmt: skip


def run_files(tree: Path, files: list[str], e2e: bool, timeout_s: float) -> tuple[bool, float, str]:
    """(passed, seconds, summary) of pytest on `files` in `tree` (-m e2e when `e2e`)."""
    command = [sys.executable, "-m", "pytest", *files, "-x", "-q", "-p", "no:cacheprovider"]
    if e2e:
        command += ["-m", "e2e"]
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return False, time.perf_counter() - start, f"timed out after {timeout_s:g} s"
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    summary = lines[-1] if lines else str(done.stderr.strip().splitlines()[-1:])
    failed = [line[:160] for line in lines if line.startswith(("FAILED", "ERROR"))]
    return done.returncode == 0, time.perf_counter() - start, " | ".join([summary, *failed])


def files_of(mutation: HarnessMutation, tree: Path, whole_tier: bool) -> list[str]:
    """The test files (or node ids) to run against `mutation`: those of them `tree` has."""
    if whole_tier and not mutation.why_e2e:
        return []  # pytest's testpaths: the whole everyday tier
    return [test for test in mutation.tests if _has_test(tree, test)]


def _has_test(tree: Path, test: str) -> bool:
    """Whether `tree` holds the file of `test`, and its function when `test` names one (FILE::NAME)."""
    path, _, name = test.partition("::")
    if not (tree / path).is_file():
        return False
    return not name or f"def {name}(" in (tree / path).read_text()


def run_mutant(
    pristine: Path, tree: Path, mutation: HarnessMutation, whole_tier: bool, timeout_s: float
) -> tuple[bool, float, str]:
    """The mutation's files on a copy of `pristine` with it applied (the copy lives only for the run)."""
    files = files_of(mutation, pristine, whole_tier)
    if not files and not whole_tier:
        return True, 0.0, "no test file of this mutation in the suite"
    copy_tree(pristine, tree)
    try:
        apply(mutation, tree)
        return run_files(tree, files, bool(mutation.why_e2e), timeout_s)
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout whose code and tests to use")
    parser.add_argument("--suite-from", type=Path, help="checkout whose tests/ to run instead of --repo's")
    parser.add_argument("--only", nargs="*", help="mutation names to run (default: all)")
    parser.add_argument("--skip-e2e", action="store_true", help="leave out the mutations only e2e can kill")
    parser.add_argument("--whole-tier", action="store_true", help="run the whole everyday tier per mutant")
    parser.add_argument("--jobs", type=int, default=1, help="pytest runs at a time")
    parser.add_argument("--timeout", type=float, default=900.0, help="per pytest run, seconds (default 900)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated run")
    args = parser.parse_args()
    chosen = [
        m for m in MUTATIONS if (not args.only or m.name in args.only) and not (args.skip_e2e and m.why_e2e)
    ]

    results: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="harness-mutation-check-") as scratch:
        pristine = Path(scratch) / "pristine"
        copy_tree(args.repo, pristine)
        if args.suite_from is not None:
            shutil.rmtree(pristine / "tests")
            copy_tree(args.suite_from / "tests", pristine / "tests")
        for mutation in chosen:  # every mutation must apply before any time is spent
            probe = Path(scratch) / "probe"
            target = probe / mutation.path
            target.parent.mkdir(parents=True)
            shutil.copy(pristine / mutation.path, target)
            apply(mutation, probe)
            shutil.rmtree(probe)
        if not args.no_baseline:
            for e2e in sorted({bool(m.why_e2e) for m in chosen}):
                files = sorted(
                    {
                        f
                        for m in chosen
                        if bool(m.why_e2e) == e2e
                        for f in files_of(m, pristine, args.whole_tier)
                    }
                )
                if not files and not args.whole_tier:
                    continue
                passed, seconds, summary = run_files(pristine, files, e2e, args.timeout)
                tier = "e2e" if e2e else "everyday"
                outcome = "passed" if passed else "FAILED"
                print(f"unmutated {tier} files: {outcome} in {seconds:.0f} s: {summary}", flush=True)
                if not passed:
                    print("the unmutated tests must pass first", file=sys.stderr)
                    return 1
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            runs = {
                pool.submit(run_mutant, pristine, Path(scratch) / m.name, m, args.whole_tier, args.timeout): m
                for m in chosen
            }
            for future in as_completed(runs):
                mutation = runs[future]
                passed, seconds, summary = future.result()
                tier = "e2e" if mutation.why_e2e else "everyday"
                results[mutation.name] = {"killed": not passed, "tier": tier, "seconds": round(seconds, 1)}
                verdict = "survived" if passed else "killed"
                print(f"{mutation.name:34} {tier:8} {verdict:8} {seconds:5.0f} s  {summary}", flush=True)

    print()
    for tier in ("everyday", "e2e"):
        names = [m.name for m in chosen if ("e2e" if m.why_e2e else "everyday") == tier]
        if names:
            killed = sum(bool(results[name]["killed"]) for name in names)
            print(f"{tier}: killed {killed} of {len(names)}")
    killed = sum(bool(r["killed"]) for r in results.values())
    print(f"all: killed {killed} of {len(chosen)} ({100 * killed / max(1, len(chosen)):.0f} %)")
    survivors = [f"{m.name} ({m.what})" for m in chosen if not results[m.name]["killed"]]
    if survivors:
        print("survivors:\n  " + "\n  ".join(survivors))
    if args.json:
        suite = str(args.suite_from or args.repo)
        args.json.write_text(
            json.dumps({"repo": str(args.repo), "suite": suite, "results": results}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
