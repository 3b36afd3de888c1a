"""Qualification records: folders under qualification/, each described by its manifest, record.json.

A manifest says which commit ran, the commands, the machine, the date, the verdict and which records it
supersedes (schema: resources/record.schema.json). The table of records in qualification/README.md is
generated from the manifests (`python -m harness.results.records`), and a test fails when the two drift.
Commands name records by their folder name (`harness compare 2026-11-30-h200-x2 ...`).
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from harness.common.errors import ConfigurationError
from harness.common.untrusted_text import markdown_text

RECORDS_DIR = Path("qualification")
MANIFEST = "record.json"
README = "README.md"
TABLE_START = (
    "<!-- records table: generated from each record.json by `python -m harness.results.records`; do not edit -->"
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
    schema = json.loads((Path(__file__).resolve().parents[1] / "resources" / "record.schema.json").read_text())
    return jsonschema.Draft202012Validator(schema)


def load_manifest(record: Path) -> dict[str, Any]:
    """A record's manifest, validated; ConfigurationError naming the file and key otherwise."""
    path = record / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ConfigurationError(f"{path}: not a readable manifest ({error}); every record has one") from None
    error = jsonschema.exceptions.best_match(_validator().iter_errors(manifest))
    if error is not None:
        where = ".".join(str(part) for part in error.absolute_path) or "(top)"
        raise ConfigurationError(f"{path}: {where}: {error.message[:300]}")
    return manifest


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
        commit = f"`{manifest['commit']}`" if manifest["commit"] else "-"
        where = markdown_text(manifest["machine"]["description"], in_table=True)
        lines.append(
            f"| `{name}/` | {manifest['verdict']} | {commit} | {manifest['summary']} "
            f"| {where} | {'; '.join(links) or '-'} |"
        )
    return "\n".join([TABLE_START, *lines, TABLE_END])


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
