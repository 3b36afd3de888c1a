"""Workflow-command escaping and caps, and the Markdown report's 1 MiB cap on a flood of huge failures."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from github_runs import run_harness

from harness.config.model import Cell
from harness.presentation.github_annotations import ANNOTATIONS_PER_KIND, annotation, capped_annotations
from harness.presentation.markdown import MARKDOWN_LIMIT_BYTES, render_markdown
from harness.results.cell_dir import write_cell_json, write_completion_record
from harness.results.cell_result import CellResult, TestCounts
from harness.results.junit import FAILURE_DETAILS
from harness.results.merge import merge_results


def test_annotation_escapes_data_and_properties():
    line = annotation("error", "50% done\r\nnext: a,b", title="t: x,y", file="tests/a b.py", line=7)
    assert line == "::error file=tests/a b.py,line=7,title=t%3A x%2Cy::50%25 done%0D%0Anext: a,b"
    assert annotation("warning", "plain") == "::warning::plain"
    assert annotation("error", "m", line=3) == "::error::m"  # a line without a file means nothing


def test_annotations_are_capped_per_kind_with_a_notice():
    items = [("error", f"e{i}", {}) for i in range(15)] + [("warning", "w", {})]
    lines = capped_annotations(items)
    assert sum(line.startswith("::error") for line in lines) == ANNOTATIONS_PER_KIND
    assert sum(line.startswith("::warning") for line in lines) == 1
    assert lines[-1].startswith("::notice title=comm-harness::5 more annotation(s) left out")


def write_failed_cell(directory, failures: int, lines_each: int, line_chars: int) -> None:
    """A cell directory whose junit.xml holds `failures` failed tests with long tracebacks."""
    cell = Cell(id="cuda-nccl-ws4", device="cuda", backend="nccl", world_size=4, tests=("tests",))
    write_cell_json(cell, directory)
    suite = ET.Element("testsuite", name=cell.id, tests=str(failures), failures=str(failures))
    for index in range(failures):
        case = ET.SubElement(suite, "testcase", classname="tests.test_big", name=f"test_{index}")
        body = "\n".join(f"frame {n}: " + "x" * line_chars for n in range(lines_each))
        text = f"ranks 0, 3 of 4 failed: boom ```\n{body}\ntests/test_big.py:{index + 1}: AssertionError"
        ET.SubElement(case, "failure", message=text.splitlines()[0]).text = text
    ET.ElementTree(suite).write(directory / "junit.xml", encoding="utf-8", xml_declaration=True)
    counts = TestCounts(failed=failures)
    write_completion_record(CellResult.of_cell(cell, "failed", "failures", counts=counts), directory)


def test_markdown_stays_under_githubs_limit_and_says_what_it_left_out(tmp_path):
    # ~48 MB of text: under the 64 MiB the harness reads of a junit.xml, far over GitHub's 1 MiB.
    write_failed_cell(tmp_path / "cell", failures=2000, lines_each=40, line_chars=600)
    report = merge_results([tmp_path / "cell"])
    # Details for the first FAILURE_DETAILS failures of a cell, the rest counted.
    assert len(report.failures) == FAILURE_DETAILS and report.failures[0].ranks == [0, 3]
    assert report.failures_left_out == {"cuda-nccl-ws4": 2000 - FAILURE_DETAILS}
    assert len(render_markdown(report).encode("utf-8")) <= MARKDOWN_LIMIT_BYTES < 1 << 20
    text = render_markdown(report, 100_000)
    assert len(text.encode("utf-8")) <= 100_000
    assert "more failure(s) not shown: the step summary is limited to 1 MiB" in text
    assert f"… {2000 - FAILURE_DETAILS} more failed tests of cuda-nccl-ws4: see its junit.xml" in text
    assert "… 29 more lines: see junit.xml of cuda-nccl-ws4" in text  # 12 of 41 lines shown
    assert "x" * 600 not in text  # long lines clipped
    # A traceback holding ``` cannot close its code block early.
    assert "\n````\nranks 0, 3 of 4 failed: boom ```" in text


def test_markdown_limit_option_and_exit_code(tmp_path):
    write_failed_cell(tmp_path / "cell", failures=50, lines_each=5, line_chars=100)
    done = run_harness("report", "cell", "--markdown", "r.md", "--markdown-limit", "20000", cwd=tmp_path)
    assert done.returncode == 1
    assert len((tmp_path / "r.md").read_bytes()) <= 20000
    done = run_harness("report", "cell", "--markdown-limit", "5", cwd=tmp_path)
    assert done.returncode == 2 and "--markdown-limit" in done.stderr
