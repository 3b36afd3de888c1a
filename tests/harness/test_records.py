"""Qualification records are data: every record has a valid manifest, and the README's table is theirs."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import pytest

from harness.common.errors import ConfigurationError
from harness.host.checkout import Checkout
from harness.results.cell_result import CellResult
from harness.results.records import (
    README,
    load_manifest,
    load_records,
    qualification_manifest,
    readme_with_table,
    records_table,
    write_manifest,
)

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


def test_every_record_names_a_commit_and_says_when_it_is_only_an_upper_bound() -> None:
    records = load_records(RECORDS)
    assert [name for name, manifest in records.items() if not manifest["commit"]] == []
    bounded = {
        name for name, m in records.items() if m.get("commit_source") == "newest commit adding its files"
    }
    assert "2026-11-28-h200" in bounded and "2026-11-30-h200-x2-peer-push" not in bounded
    table = records_table(records)
    assert all(f"| `{name}/` | " in table for name in bounded)
    assert table.count("(or earlier: the newest commit adding its files)") == len(bounded)


def fingerprint(gpus: int) -> dict:
    return {
        "torch": "2.11.0+cu130",
        "nccl": "2.28.9",
        "nvidia_driver": "580.159.04",
        "nvidia_gpus": [{"name": "NVIDIA H200"}] * gpus,
    }


def test_a_qualify_manifest_takes_the_machine_from_the_fingerprints_and_the_verdict_from_the_exit_code(
    tmp_path: Path,
) -> None:
    cells = [
        CellResult("cuda-nccl-ws1", "cuda", 1, "passed", executor="local", fingerprint=fingerprint(1)),
        CellResult("cuda-nccl-ws2", "cuda", 2, "failed", executor="local", fingerprint=fingerprint(2)),
        # Missing: it never ran, so it has no fingerprint and its device is not the record's.
        CellResult("cpu-gloo-ws4", "cpu", 4, "error", executor="local", missing=True),
    ]
    manifest = qualification_manifest(
        cells,
        [],
        1,
        command="harness qualify matrix.yaml --bench",
        checkout=Checkout("0123456789abcdef0123456789abcdef01234567", dirty=True),
        harness_version="0.1.0",
        supersedes=["2026-11-30-h200-x2"],
        today=date(2026, 12, 8),
    )
    assert manifest["verdict"] == "not qualified" and manifest["devices"] == ["cuda"]
    assert manifest["commit_source"] == "checkout with uncommitted changes"
    assert manifest["machine"] == {
        "description": "2 x NVIDIA H200, driver 580.159.04, torch 2.11.0+cu130, NCCL 2.28.9",
        "gpus": "2 x NVIDIA H200",
        "driver": "580.159.04",
        "torch": "2.11.0+cu130",
        "nccl": "2.28.9",
    }
    assert manifest["summary"] == (
        "`harness qualify matrix.yaml --bench`: cuda-nccl-ws1 passed, cuda-nccl-ws2 failed, cpu-gloo-ws4 "
        "error; not qualified, exit 1"
    )
    write_manifest(tmp_path, manifest)
    assert load_manifest(tmp_path) == manifest
    outside = qualification_manifest(
        cells[:1], [], 0, command="harness qualify", checkout=Checkout(None), harness_version="0.1.0",
        supersedes=[], today=date(2026, 12, 8),
    )  # fmt: skip
    assert outside["verdict"] == "qualified" and outside["commit"] is None and "commit_source" not in outside
    with pytest.raises(ConfigurationError, match=r"record.json: supersedes.0: 'old' does not match"):
        write_manifest(tmp_path, {**manifest, "supersedes": ["old"]})
