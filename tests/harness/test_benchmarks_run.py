"""Every script in benchmarks/ still starts: its imports resolve and its options parse (`--help`).

The scripts measure the figures the documentation quotes (docs/measured.md); they are not run for real here
(minutes, noisy machines), but a refactor that breaks one fails this test instead of the next person's
measurement.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
# benchmarks/harness/: the harness's own measurements; benchmarks/communicators/: the communicators' design
# studies. Paths relative to benchmarks/.
SCRIPTS = sorted(
    str(path.relative_to(BENCHMARKS))
    for path in BENCHMARKS.glob("*/*.py")
    if 'if __name__ == "__main__"' in path.read_text()
)


def test_every_benchmark_script_is_found() -> None:
    assert "harness/plugin_overhead.py" in SCRIPTS and "harness/containment_probes.py" in SCRIPTS
    assert "communicators/bench_gatherv_strategies.py" in SCRIPTS
    # Every script is in one of the two groups: none left at the top beside the shared helper.
    assert [path.name for path in BENCHMARKS.glob("*.py")] == ["forked_ranks.py"]


@pytest.mark.e2e
def test_every_benchmark_script_starts() -> None:
    # All at once: each spends its second or two importing torch, and they do not share anything.
    started = {
        script: subprocess.Popen(
            [sys.executable, str(BENCHMARKS / script), "--help"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=BENCHMARKS.parent,
        )
        for script in SCRIPTS
    }
    broken = {}
    for script, process in started.items():
        stdout, stderr = process.communicate(timeout=300)
        if process.returncode != 0 or "usage:" not in stdout:
            broken[script] = stderr.strip().splitlines()[-1:] or [f"exit code {process.returncode}"]
    assert not broken, broken


# Private names a script may use that are not this project's: torch's MultiProcessTestCase is driven through
# `_spawn_processes` (its own tests' setUp does the same), and torch/os/sys internals reached as modules.
FOREIGN_PRIVATE_NAMES = {"_spawn_processes"}
FOREIGN_MODULES = {"torch", "os", "sys"}
COMMUNICATORS = BENCHMARKS.parent / "communicators"


def private_names_reached(path: Path) -> set[str]:
    """The `_names` a script reads off something (`x._name`), not counting those it defines itself, torch's
    or the standard library's."""
    tree = ast.parse(path.read_text())
    own = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.ClassDef)}
    # Attributes a script's own classes set on themselves (`self._x = ...`).
    own |= {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.ctx, ast.Store)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    }
    reached = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_") or node.attr.startswith("__"):
            continue
        root = node.value
        while isinstance(root, ast.Attribute):
            root = root.value
        if isinstance(root, ast.Name) and root.id in FOREIGN_MODULES:
            continue
        if node.attr not in own and node.attr not in FOREIGN_PRIVATE_NAMES:
            reached.add(node.attr)
    return reached


def test_no_harness_measurement_reaches_into_private_attributes() -> None:
    reached = {script: private_names_reached(BENCHMARKS / script) for script in SCRIPTS}
    assert {
        script: names for script, names in reached.items() if names and script.startswith("harness/")
    } == {}


def test_the_design_studies_reach_only_row_hooks_the_communicators_define() -> None:
    # A design study times or swaps the communicators' row primitives, the hooks each platform's subclass
    # overrides (communicators/base.py): it fails only when run, so a renamed hook must fail here.
    defined = set()
    for path in COMMUNICATORS.glob("*.py"):
        tree = ast.parse(path.read_text())
        defined |= {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    studies = [script for script in SCRIPTS if script.startswith("communicators/")]
    reached = {script: private_names_reached(BENCHMARKS / script) for script in studies}
    assert {script: names - defined for script, names in reached.items() if names - defined} == {}
    assert reached["communicators/bench_gloo_all2all.py"] >= {"_all_gatherv_rows", "_reduce_scatterv_rows"}


def test_every_planted_bug_still_matches_the_code_it_mutates(monkeypatch: pytest.MonkeyPatch) -> None:
    # The mutation checks refuse a mutation whose line is not found exactly once, but only when run (minutes
    # per mutant): a refactor that rewrites a mutated line must fail here, naming the mutation to update.
    monkeypatch.syspath_prepend(str(BENCHMARKS / "harness"))
    communicators = importlib.import_module("mutation_check")
    harness = importlib.import_module("harness_mutation_check")
    for script in (communicators, harness):  # --only picks mutations by name, and results are keyed by it
        names = [m.name for m in script.MUTATIONS]
        assert len(set(names)) == len(names), script.__file__
    times_found = {
        m.name: (m.path, (BENCHMARKS.parent / m.path).read_text().count(m.before))
        for m in [*communicators.MUTATIONS, *harness.MUTATIONS]
    }
    assert {name: found for name, found in times_found.items() if found[1] != 1} == {}
    # A test file (or FILE::NAME) a harness mutation names but the suite lost is left out of its run.
    lost = {
        m.name: sorted(set(m.tests) - set(harness.files_of(m, BENCHMARKS.parent, whole_tier=False)))
        for m in harness.MUTATIONS
    }
    assert {name: tests for name, tests in lost.items() if tests} == {}


def test_a_mutant_tree_keeps_harness_results(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The copy leaves out a run's output (the checkout's results/), not harness/results/, the code that judges
    # a cell: without it every mutant and the unmutated baseline failed to import.
    monkeypatch.syspath_prepend(str(BENCHMARKS / "harness"))
    copy_tree = importlib.import_module("mutation_check").copy_tree
    checkout = tmp_path / "checkout"
    for path in ("results/run-1/cell.json", "harness/results/merge.py", "harness/__pycache__/x.pyc"):
        (checkout / path).parent.mkdir(parents=True, exist_ok=True)
        (checkout / path).write_text("")
    copy_tree(checkout, tmp_path / "copy")
    copied = {str(p.relative_to(tmp_path / "copy")) for p in (tmp_path / "copy").rglob("*") if p.is_file()}
    assert copied == {"harness/results/merge.py"}
