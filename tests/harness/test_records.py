"""Qualification records are data: every record has a valid manifest, and the README's table is theirs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.common.errors import ConfigurationError
from harness.results.records import README, load_records, readme_with_table, records_table

RECORDS = Path(__file__).resolve().parents[2] / "qualification"


def test_every_record_has_a_valid_manifest_and_what_it_supersedes_exists() -> None:
    folders = {folder.name for folder in RECORDS.iterdir() if folder.is_dir()}
    records = load_records(RECORDS)
    assert set(records) == folders
    assert records["2026-11-30-h200-x2-peer-push"]["supersedes"] == ["2026-11-30-h200-x2-peer-copy"]
    assert records["2026-11-28-h200-x2-qualify"]["verdict"] == "not qualified"


def test_the_readme_table_is_generated_from_the_manifests() -> None:
    readme = (RECORDS / README).read_text(encoding="utf-8")
    expected = readme_with_table(readme, records_table(load_records(RECORDS)))
    assert readme == expected, (
        "qualification/README.md drifted from the manifests: run `python -m harness.results.records`"
    )


def test_a_broken_manifest_is_an_error_naming_its_file_and_key(tmp_path: Path) -> None:
    for name in ("2026-11-28-h200", "2026-11-28-h200-x2"):
        shutil.copy2(
            RECORDS / name / "record.json", (tmp_path / name).mkdir() or tmp_path / name / "record.json"
        )
    manifest = json.loads((tmp_path / "2026-11-28-h200" / "record.json").read_text())
    manifest["verdict"] = "fine"
    (tmp_path / "2026-11-28-h200" / "record.json").write_text(json.dumps(manifest))
    with pytest.raises(
        ConfigurationError, match=r"2026-11-28-h200/record.json: verdict: 'fine' is not one of"
    ):
        load_records(tmp_path)
    shutil.rmtree(tmp_path / "2026-11-28-h200")
    with pytest.raises(ConfigurationError, match="supersedes '2026-11-28-h200', which is no record"):
        load_records(tmp_path)
