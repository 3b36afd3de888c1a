"""The conformance table is generated from a run's merged JUnit XML: operations, platforms, gap notes."""

from __future__ import annotations

from pathlib import Path

from harness.commands.cli import main
from harness.presentation.conformance_table import read_outcomes, render_table


def _case(name: str, platform: str | None, outcome: str = "") -> str:
    prop = f'<property name="communicator_platform" value="{platform}"/>'
    properties = f"<properties>{prop}</properties>" if platform else ""
    return f'<testcase classname="t" name="{name}">{properties}{outcome}</testcase>'


GAP = '<skipped type="pytest.xfail" message="known gap of vllm on cpu: no all_gatherv (#57837)"/>'
XFAIL = '<skipped type="pytest.xfail" message="reason: flaky on this host"/>'
FAILURE = '<failure message="rank 0 of 2 failed: AttributeError">detail</failure>'
JUNIT = f"""<?xml version="1.0" encoding="utf-8"?>
<testsuites name="comm-harness">
  <testsuite name="cpu-gloo-ws2-vllm">
    {_case("test_all_reduce[cpu]", "cpu")}
    {_case("test_all_reduce[xpu_emulated]", "xpu_emulated")}
    {_case("test_all_gatherv_uneven_sizes[equal-cpu]", "cpu", GAP)}
    {_case("test_all_gatherv_uneven_sizes[all_zero-cpu]", "cpu")}
    {_case("test_broadcast_from_first_and_last_rank[xpu_emulated]", "xpu_emulated", FAILURE)}
    {_case("test_subgroup_all_reduce_sums_the_members_only[ranks_1_2-cpu]", "cpu", XFAIL)}
    {_case("test_backend_table_is_current", None)}
    {_case("test_every_platform_and_name[naive-cuda]", None)}
  </testsuite>
  <testsuite name="cpu-gloo-ws4-vllm">
    {_case("test_all_reduce[cpu]", "cpu")}
    {_case("test_all_gatherv_uneven_sizes[equal-cpu]", "cpu", GAP)}
  </testsuite>
</testsuites>
"""


def test_outcomes_are_read_per_platform_and_world_size_leaving_other_tests_out(tmp_path: Path):
    (tmp_path / "junit.xml").write_text(JUNIT)
    outcomes = read_outcomes(tmp_path / "junit.xml")
    assert len(outcomes) == 8  # the last two have no platform property: not conformance tests
    gap = next(o for o in outcomes if o.status == "known gap")
    assert (gap.operation, gap.platform, gap.world_size) == ("all_gatherv", "cpu", 2)
    assert gap.reason == "no all_gatherv (#57837)"
    # An xfail that is no recorded gap stays an xfail; a sub-group test is in its own row.
    xfail = next(o for o in outcomes if o.status == "xfail")
    assert (xfail.operation, xfail.reason) == ("sub-groups", "reason: flaky on this host")
    assert {o.status for o in outcomes if o.platform == "xpu_emulated"} == {"pass", "FAIL"}


def test_the_table_has_a_row_per_operation_and_numbered_gap_notes(tmp_path: Path):
    (tmp_path / "junit.xml").write_text(JUNIT)
    text = render_table(read_outcomes(tmp_path / "junit.xml"), "vLLM")
    assert "| operation | cpu ws2 | cpu ws4 | xpu-emulated ws2 |" in text
    assert "| all_reduce | pass | pass | pass |" in text
    assert "| all_gatherv | known gap [1] (1/2), pass (1/2) | known gap [1] | - |" in text
    assert "| sub-groups | xfail [2] | - | - |" in text
    assert "| broadcast | - | - | FAIL |" in text
    # The reason is read from junit.xml: shown as code (a `#` could start a heading or link an issue).
    assert "1. `no all_gatherv (#57837)`" in text
    assert "| `test_all_gatherv_uneven_sizes[equal]` | known gap [1] | known gap [1] | - |" in text


def test_the_command_writes_the_file_and_rejects_a_directory_without_results(tmp_path: Path, capsys):
    assert main(["conformance", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("harness conformance: error: ") and "no merged junit.xml" in error
    (tmp_path / "junit.xml").write_text(JUNIT)
    assert (
        main(["conformance", str(tmp_path), "--out", str(tmp_path / "table.md"), "--title", "vLLM 0.33.0"])
        == 0
    )
    assert (tmp_path / "table.md").read_text().startswith("# vLLM 0.33.0\n")
