"""The plugin's conformance check: the suite in tests/plugin/suites/conformance/ (ordinary pytest patterns:
fixture and autouse environment variables, module attributes, seeded RNGs, cwd, sys.path, tmp_path files,
parameters, class- and module-scoped fixtures) run in fork and in reuse mode; the outcomes must be identical.

    python tests/plugin/conformance.py                                   # cpu (gloo), world size 2
    python tests/plugin/conformance.py --device cuda --world-size 2 --out qualification/DIR

Writes `conformance.md` (the outcome table) and `conformance.json` to --out; exit 0 when every test has the
same outcome in both modes, 1 when not.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plugin_runs import Run, run_pytest_in  # noqa: E402  (this directory, when run as a script)

SUITE = Path(__file__).resolve().parent / "suites" / "conformance"
MODES = {"fork": "off", "reuse": "on"}


@dataclass(frozen=True)
class TestRow:
    """One test's outcome in each mode, and why reuse mode ran it on fresh ranks ("" when on the workers)."""

    name: str
    fork: str
    reuse: str
    fresh_ranks_reason: str

    @property
    def same(self) -> bool:
        return self.fork == self.reuse


@dataclass(frozen=True)
class Conformance:
    device: str
    world_size: int
    rows: list[TestRow]
    summary_lines: dict[str, str]  # mode -> the plugin's reuse summary line ("" in fork mode)

    @property
    def identical(self) -> bool:
        return all(row.same for row in self.rows)


def run_conformance(device: str, world_size: int, workdir: Path, timeout_s: float = 600) -> Conformance:
    """Run the suite once per mode, each in its own copy, and pair up the per-test outcomes."""
    runs: dict[str, Run] = {}
    fresh: dict[str, str] = {}
    for mode, reuse in MODES.items():
        directory = workdir / mode
        shutil.copytree(SUITE, directory, ignore=shutil.ignore_patterns("__pycache__"))
        progress = directory / "progress.jsonl"
        runs[mode] = run_pytest_in(
            directory,
            f"--dist-device={device}",
            f"--dist-world-size={world_size}",
            f"--dist-reuse={reuse}",
            "--dist-timeout=60",
            f"--dist-progress={progress}",
            timeout=timeout_s,
        )
        if mode == "reuse":
            for line in progress.read_text().splitlines():
                event = json.loads(line)
                if event["event"] == "fresh_ranks":
                    fresh[_test_name(event["nodeid"])] = event["reason"]
    names = sorted(runs["fork"].outcomes.keys() | runs["reuse"].outcomes.keys())
    rows = [
        TestRow(
            name,
            runs["fork"].outcomes.get(name, "missing"),
            runs["reuse"].outcomes.get(name, "missing"),
            fresh.get(name, ""),
        )
        for name in names
    ]
    summary = {mode: _reuse_summary(run.output) for mode, run in runs.items()}
    return Conformance(device, world_size, rows, summary)


def markdown(result: Conformance) -> str:
    """The outcome table, one row per test, with the verdict first."""
    differing = [row for row in result.rows if not row.same]
    verdict = (
        f"identical outcomes for all {len(result.rows)} tests"
        if not differing
        else f"{len(differing)} of {len(result.rows)} tests differ: " + ", ".join(r.name for r in differing)
    )
    lines = [
        f"# Plugin conformance: fork mode vs reuse mode, {result.device}, world size {result.world_size}",
        "",
        f"**{verdict}**",
        "",
        f"Reuse run: `{result.summary_lines.get('reuse') or 'no summary line'}`",
        "",
        "| test | fork | reuse | reuse ran it on |",
        "|---|---|---|---|",
    ]
    for row in result.rows:
        where = f"fresh ranks: {row.fresh_ranks_reason}" if row.fresh_ranks_reason else "the workers"
        mark = "" if row.same else " **differs**"
        lines.append(f"| `{row.name}` | {row.fork} | {row.reuse}{mark} | {where.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", choices=["cpu", "cuda", "xpu"], default="cpu")
    parser.add_argument("--world-size", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("results/conformance"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="comm-harness-conformance-") as workdir:
        result = run_conformance(args.device, args.world_size, Path(workdir))
    args.out.mkdir(parents=True, exist_ok=True)
    table = markdown(result)
    (args.out / "conformance.md").write_text(table)
    document = {**asdict(result), "identical": result.identical}
    (args.out / "conformance.json").write_text(json.dumps(document, indent=2) + "\n")
    print(table)
    print(f"written: {args.out / 'conformance.md'}, {args.out / 'conformance.json'}")
    return 0 if result.identical else 1


def _test_name(nodeid: str) -> str:
    # As JUnit names it (and plugin_runs reads it): the function name with its parameters, no class.
    return nodeid.split("::")[-1]


def _reuse_summary(output: str) -> str:
    return next((line for line in output.splitlines() if line.startswith("comm-harness reuse mode:")), "")


if __name__ == "__main__":
    sys.exit(main())
