"""The known-gaps file (harness/adapters/gap_file.py): versions, spliced lists, and mistakes named by line."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.adapters.gap_file import GapFileError, load_known_gaps, versions_in

GAPS = """
shared:
  common: &common
    - {test: "test_gather_*", platforms: [xpu_emulated], defect: vllm, reason: stacked output, match: invalid}
versions:
  "0.19.1":
    - {test: "test_a[[]naive]", platforms: [cpu], defect: vllm, reason: naive manager, source: "x.py:49"}
    - *common
  "0.33.0": &current
    - *common
  "0.34.0": *current
  "0.35.0": []
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "known-gaps.yaml"
    path.write_text(text)
    return path


def test_versions_splice_shared_lists_and_aliases(tmp_path):
    path = write(tmp_path, GAPS)
    assert versions_in(path) == ["0.19.1", "0.33.0", "0.34.0", "0.35.0"]
    old = load_known_gaps(path, "0.19.1")
    assert [gap.test for gap in old] == ["test_a[[]naive]", "test_gather_*"]
    assert old[0].source == "x.py:49" and old[0].defect == "vllm"
    assert load_known_gaps(path, "0.34.0") == load_known_gaps(path, "0.33.0")
    # Recorded with no gaps is not the same as not recorded.
    assert load_known_gaps(path, "0.35.0") == ()
    assert load_known_gaps(path, "0.36.0") is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{test: t, platforms: [cpu], defect: vllm, reason: r, matches: x}", "unknown key 'matches'"),
        ("{test: t, platforms: [cpu], reason: r}", "missing 'defect'"),
        ("{test: t, platforms: [cpu], defect: vllm, reason: r, match: '('}", "is not a regular expression"),
        ("{test: t, platforms: cpu, defect: vllm, reason: r}", "platforms is a list"),
    ],
)
def test_a_mistake_names_file_line_and_key(tmp_path, entry, message):
    path = write(tmp_path, f'versions:\n  "1.0":\n    - {entry}\n')
    with pytest.raises(GapFileError, match=message) as caught:
        load_known_gaps(path, "1.0")
    assert str(caught.value).startswith(f"{path}:3: versions.1.0 gap 1")


def test_a_shadowed_gap_is_an_error_naming_the_one_that_wins(tmp_path):
    path = write(
        tmp_path,
        """versions:
  "1.0":
    - {test: "test_dispatch*", platforms: [cpu, xpu_emulated], defect: vllm, reason: wide}
    - {test: "test_dispatch_lists", platforms: [cpu], defect: vllm, reason: narrow}
""",
    )
    with pytest.raises(
        GapFileError, match=r":4: .*gap 2 \(test_dispatch_lists on cpu\) is shadowed by gap 1"
    ):
        load_known_gaps(path, "1.0")


def test_a_narrower_gap_first_or_on_another_platform_is_not_shadowed(tmp_path):
    path = write(
        tmp_path,
        """versions:
  "1.0":
    - {test: "test_dispatch_lists", platforms: [cpu], defect: vllm, reason: narrow}
    - {test: "test_dispatch*", platforms: [cpu], defect: vllm, reason: wide}
    - {test: "test_dispatch_lists", platforms: [xpu_emulated], defect: vllm, reason: other platform}
    - {test: "test_x", platforms: [cpu], world_sizes: [2], defect: torch, reason: ws2}
    - {test: "test_x", platforms: [cpu], defect: torch, reason: every other size}
""",
    )
    assert len(load_known_gaps(path, "1.0")) == 5


def test_a_file_without_versions_is_an_error(tmp_path):
    with pytest.raises(GapFileError, match="maps `versions:`"):
        load_known_gaps(write(tmp_path, "gaps: []\n"), "1.0")
