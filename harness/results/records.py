"""Qualification records: folders under qualification/, each described by its manifest, record.json.

A manifest says which commit ran, the commands, the machine, the date, the verdict and which records it
supersedes (schema: resources/record.schema.json). `harness qualify` writes its own into its output
directory (`qualification_manifest`, `write_manifest`); the records migrated from README prose were written
once by hand. The table of records in qualification/README.md is generated from the manifests
(`python -m harness.results.records`), and a test fails when the two drift.
Commands name records by their folder name (`harness compare 2026-11-30-h200-x2 ...`).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from harness.bench.verdict import BenchOutcome
from harness.common.errors import EXIT_OK, ConfigurationError
from harness.common.untrusted_text import markdown_text
from harness.host.checkout import Checkout
from harness.results.cell_result import CellResult
from harness.results.compare.outcomes import environment_facts
from harness.results.files import write_json

RECORDS_DIR = Path("qualification")
MANIFEST = "record.json"
README = "README.md"
TABLE_START = (
    "<!-- records table: generated from each record.json by "
    "`python -m harness.results.records`; do not edit -->"
)
TABLE_END = "<!-- end of records table -->"


def resolve_results(text: str, side: str) -> Path:
    """A results path as given, or a record's folder when `text` is a record's name under ./qualification/."""
    path = Path(text)
    if path.exists():
        return path
    record = RECORDS_DIR / text
    if len(path.parts) == 1 and record.is_dir():
        return record
    raise ConfigurationError(
        f"{side} {text!r}: no such directory, nor a record {RECORDS_DIR / text}/; pass a `harness run --out` "
        "directory, a folder of CI artifacts, or a record's name"
    )


@cache
def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(
        (Path(__file__).resolve().parents[1] / "resources" / "record.schema.json").read_text()
    )
    return jsonschema.Draft202012Validator(schema)


def _check_manifest(manifest: Any, path: Path) -> None:
    error = jsonschema.exceptions.best_match(_validator().iter_errors(manifest))
    if error is not None:
        where = ".".join(str(part) for part in error.absolute_path) or "(top)"
        raise ConfigurationError(f"{path}: {where}: {error.message[:300]}")


def load_manifest(record: Path) -> dict[str, Any]:
    """A record's manifest, validated; ConfigurationError naming the file and key otherwise."""
    path = record / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ConfigurationError(f"{path}: not a readable manifest ({error}); every record has one") from None
    _check_manifest(manifest, path)
    return manifest


def check_record_names(names: Iterable[str], option: str) -> list[str]:
    """`names` (records a new one supersedes), each a record's folder name; ConfigurationError otherwise."""
    pattern = _validator().schema["properties"]["supersedes"]["items"]["pattern"]
    names = list(names)
    for name in names:
        if not re.fullmatch(pattern, name):
            raise ConfigurationError(
                f"{option} {name!r}: not a record's name, a folder name under {RECORDS_DIR}/ such as "
                "2026-11-30-h200-x2 (its date, then lowercase letters, digits, dots and dashes)"
            )
    return names


def qualification_manifest(
    cells: list[CellResult],
    bench: list[BenchOutcome],
    exit_code: int,
    *,
    command: str,
    checkout: Checkout,
    harness_version: str,
    supersedes: list[str],
    today: date,
) -> dict[str, Any]:
    """The manifest of a `harness qualify` run: its `command`, the cells (summary entries) and bench
    verdicts it merged and its exit code; the machine and devices from the fingerprints of the cells that
    ran (a missing cell has none)."""
    ran = [cell for cell in cells if cell.fingerprint]
    facts: dict[str, str] = {}
    for cell in ran:
        for key, value in environment_facts(cell.fingerprint).items():
            facts.setdefault(key, value)
    # Cells see different GPUs (a ws1 cell one, a ws2 cell two): the machine has at least the most any saw.
    seen = [environment_facts(cell.fingerprint).get("gpus", "") for cell in ran]
    gpus = max(seen, key=lambda text: int(text.split(" x ")[0]) if text else 0, default="")
    machine = {"gpus": gpus} if gpus else {}
    machine.update((key, facts[fact]) for key, fact in _MACHINE_FACTS if fact in facts)
    described = [gpus or "no GPU", *(f"{label} {facts[fact]}" for label, fact in _DESCRIBED if fact in facts)]
    verdict = "qualified" if exit_code == EXIT_OK else "not qualified"
    statuses = ", ".join(f"{cell.id} {cell.status}" for cell in cells)
    judged = [
        f"bench {outcome.device} ws{outcome.world_size}: "
        + ("did not finish" if outcome.error else _bench_result(outcome))
        for outcome in bench
    ]
    return {
        "date": today.isoformat(),
        "commit": checkout.commit,
        **({"commit_source": _COMMIT_SOURCE[checkout.dirty]} if checkout.commit else {}),
        "commands": [command],
        "harness_version": harness_version,
        "devices": sorted({cell.device for cell in ran}),
        "machine": {"description": ", ".join(described), **machine},
        "verdict": verdict,
        "supersedes": list(supersedes),
        "summary": "; ".join(
            [f"`{command}`: {statuses or 'no cell'}", *judged, f"{verdict}, exit {exit_code}"]
        ),
    }


# (manifest's machine key, environment_facts key), and (label in the description, environment_facts key).
_MACHINE_FACTS = (("driver", "nvidia_driver"), ("torch", "torch"), ("nccl", "nccl"))
_DESCRIBED = (("driver", "nvidia_driver"), ("torch", "torch"), ("NCCL", "nccl"))
_COMMIT_SOURCE = {False: "checkout", True: "checkout with uncommitted changes"}


def _bench_result(outcome: BenchOutcome) -> str:
    problems = [
        f"{len(outcome.incorrect)} wrong result(s)" if outcome.incorrect else "",
        f"{len(outcome.violations)} floor miss(es)" if outcome.violations else "",
    ]
    return ", ".join(problem for problem in problems if problem) or "correct, every floor measured holds"


def write_manifest(directory: Path, manifest: dict[str, Any]) -> Path:
    """`manifest` as `directory`/record.json, validated first (a ConfigurationError names what is wrong)."""
    path = directory / MANIFEST
    _check_manifest(manifest, path)
    write_json(path, manifest)
    return path


def load_records(root: Path = RECORDS_DIR) -> dict[str, dict[str, Any]]:
    """Every record's manifest by folder name, newest first; a `supersedes` naming no record is an error."""
    records = {folder.name: load_manifest(folder) for folder in root.iterdir() if folder.is_dir()}
    for name, manifest in records.items():
        for older in manifest["supersedes"]:
            if older not in records:
                raise ConfigurationError(
                    f"{root / name / MANIFEST}: supersedes {older!r}, which is no record"
                )
    return dict(sorted(records.items(), key=lambda item: (item[1]["date"], item[0]), reverse=True))


def records_table(records: dict[str, dict[str, Any]]) -> str:
    """The README's table of records, from their manifests."""
    superseded_by = {old: name for name, m in records.items() for old in m["supersedes"]}
    lines = [
        "| record | verdict | commit | what ran | where | supersedes / superseded by |",
        "|---|---|---|---|---|---|",
    ]
    for name, manifest in records.items():
        links = [f"`{old}`" for old in manifest["supersedes"]]
        if name in superseded_by:
            links.append(f"superseded by `{superseded_by[name]}`")
        commit = f"`{manifest['commit'][:7]}`" if manifest["commit"] else "-"
        if manifest.get("commit_source") in _COMMIT_SOURCE_NOTES:
            commit += f" ({_COMMIT_SOURCE_NOTES[manifest['commit_source']]})"
        where = markdown_text(manifest["machine"]["description"], in_table=True)
        lines.append(
            f"| `{name}/` | {manifest['verdict']} | {commit} | {manifest['summary']} "
            f"| {where} | {'; '.join(links) or '-'} |"
        )
    return "\n".join([TABLE_START, *lines, TABLE_END])


# How the table qualifies a commit that is not exactly the one that ran.
_COMMIT_SOURCE_NOTES = {
    "checkout with uncommitted changes": "with uncommitted changes",
    "newest commit adding its files": "or earlier: the newest commit adding its files",
}


def readme_with_table(readme: str, table: str) -> str:
    """The README with its generated table replaced by `table`."""
    start, end = readme.find(TABLE_START), readme.find(TABLE_END)
    if start < 0 or end < start:
        raise ConfigurationError(f"{RECORDS_DIR / README}: no generated table between its markers")
    return readme[:start] + table + readme[end + len(TABLE_END) :]


def main(root: Path = RECORDS_DIR) -> int:
    """Rewrite qualification/README.md's table from the manifests."""
    readme = root / README
    readme.write_text(
        readme_with_table(readme.read_text(encoding="utf-8"), records_table(load_records(root)))
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
