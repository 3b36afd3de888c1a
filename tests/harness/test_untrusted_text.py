"""harness/common/untrusted_text.py on hostile strings, and `harness report` on hostile artifacts."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from cli_runs import harness_env, run_harness
from rich.console import Console
from untrusted_outputs import TERMINAL_CONTROLS, forged_commands, runner_commands

from harness.common.untrusted_text import (
    annotation_data,
    annotation_property,
    log_line,
    markdown_block_line,
    markdown_code,
    markdown_text,
    one_line,
    print_line,
    terminal_text,
    xml_text,
)
from harness.config.model import Cell
from harness.presentation.github_annotations import annotation
from harness.results.cell_dir import write_cell_json, write_completion_record
from harness.results.cell_result import CellResult, TestCounts

# Each is something a CI runner, a terminal or a Markdown renderer acts on when passed through as is.
HOSTILE = [
    "::error file=forged.py,line=1::forged",
    "::add-mask::secret",
    "::stop-commands::token",
    "   ::warning::indented",
    "\t::notice::tabbed",
    "\u00a0\u2003::error::unicode-blanks",
    "text\n::error::after-lf",
    "text\r::error::after-cr",
    "text\r\n::error::after-crlf",
    "text\x85::error::after-nel",
    "text\u2028::error::after-line-separator",
    "text\x0b\x0c::error::after-vt-ff",
    "legacy ##[error]anywhere",
    "##[add-mask]secret",
    "#\u00ad#[error]soft-hyphen-inside",
    "\x1b[2J\x1b[31mred\x1b[0m",
    "\x1b]8;;https://evil.example/\x1b\\osc8\x1b]8;;\x1b\\",
    "\x1b]0;title\x07",
    "\x9b31mC1-CSI \x9d8;;https://evil.example/\x9c",
    "DEL\x7f NUL\x00 BS\x08",
    "bidi \u202eevil\u202c zero\u200bwidth \ufeff",
    "lone surrogate \ud800",
    "[/]",
    "[bold red]styled[/]",
    "[link=https://evil.example/]click[/link]",
    ":cross_mark: emoji code",
    "one`tick",
    "two``ticks",
    "three```ticks",
    "`edge`",
    "<img src=x onerror=alert(1)>",
    "[md link](https://evil.example/) www.evil.example a@evil.example",
    "a | pipe | row",
    "*emphasis* _under_ ~~strike~~ $math$ &amp; #heading",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_a_log_line_is_one_line_the_runner_never_executes(text: str) -> None:
    line = log_line(text)
    assert not re.search(r"[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]", line)
    assert not TERMINAL_CONTROLS.search(line) and "\u202e" not in line and "\u00ad" not in line
    assert forged_commands(line) == [] and runner_commands(line) == []
    # Safe text passes as it is; what was escaped stays readable.
    assert log_line("tests/x.py::test_y[a-b] passed") == "tests/x.py::test_y[a-b] passed"
    line.encode("utf-8")  # no lone surrogate left to fail the write


def test_escapes_are_visible_and_named() -> None:
    assert one_line("a\nb\rc\td\x1b[0m\x9b\u2028\ud800") == "a\\nb\\rc\\td\\x1b[0m\\x9b\\u2028\\ud800"
    assert log_line("  ::add-mask::x") == "  \\::add-mask::x"
    assert log_line("x ##[error]y ###[z") == "x ##\\[error]y ###\\[z"
    assert one_line("✅ é 中") == "✅ é 中"  # printable Unicode is text, not a threat


@pytest.mark.parametrize("text", HOSTILE)
def test_the_terminal_shows_markup_literally_without_escapes(text: str) -> None:
    console = Console(record=True, width=40, color_system=None, force_terminal=False)
    print_line(console, f"FAILED cell {'x' * 30} {text} {text}")
    shown = console.export_text()
    assert shown.count("\n") == 1, "a line was wrapped or split"
    assert not TERMINAL_CONTROLS.search(shown) and forged_commands(shown) == []
    # A Text is never parsed: markup and emoji codes stay as typed.
    for literal in ("[/]", "[bold red]", "[link=", ":cross_mark:"):
        if literal in text:
            assert literal in shown
    assert terminal_text("[/]").plain == "[/]"


def test_annotations_stay_one_command_with_the_cells_words_as_data() -> None:
    hostile = "\n".join(HOSTILE)
    line = annotation("error", hostile, title=f"cell: {hostile}", file="tests/a,b.py", line=3)
    [command] = runner_commands(line)
    assert command.name == "error" and command.at_line_start and "\n" not in line and "\r" not in line
    assert command.properties["file"] == "tests/a%2Cb.py" and command.properties["line"] == "3"
    assert "##[" not in line and not TERMINAL_CONTROLS.search(line)
    # GitHub shows the message's line breaks: kept as %0A/%0D, one per break in the text.
    assert command.data.count("%0A") == hostile.count("\n") and "%0D" in command.data
    assert annotation_data("50% a\r\nb") == "50%25 a%0D%0Ab"
    assert annotation_property("t: a,b\nc") == "t%3A a%2Cb\\nc"


def code_span_content(span: str) -> str:
    """What a CommonMark renderer shows for a code span the function wrote (fence, padding, table pipes)."""
    fence = re.match("`+", span).group()
    assert span.endswith(fence) and len(span) > 2 * len(fence)
    inner = span[len(fence) : -len(fence)]
    runs = [len(run) for run in re.findall("`+", inner)]
    assert len(fence) not in runs, "a backtick run inside would close the span"
    if inner.startswith(" ") and inner.endswith(" ") and inner.strip():
        inner = inner[1:-1]
    return inner


@pytest.mark.parametrize("text", HOSTILE)
def test_markdown_cannot_leave_its_code_span_or_table_cell(text: str) -> None:
    span = markdown_code(text)
    assert code_span_content(span) == log_line(text) and "\n" not in span
    cell = markdown_code(text, in_table=True)
    assert "|" not in cell.replace("\\|", "")
    plain = markdown_text(text, in_table=True)
    assert plain.startswith("`"), f"{text!r} needs a code span"
    assert forged_commands(span) == [] and not TERMINAL_CONTROLS.search(span)


def test_plain_words_stay_plain_in_markdown() -> None:
    for text in ("cpu-gloo-ws2", "needs 4 CUDA GPUs, this host has 0", "all_reduce at 1 MiB: 3.2 GB/s"):
        assert markdown_text(text) == text
    assert markdown_code("a`b") == "``a`b``" and markdown_code("`x`") == "`` `x` ``"
    assert markdown_block_line("\x1b[0m::error::x") == "\\x1b[0m::error::x"
    assert markdown_block_line("::error::x") == "\\::error::x"


def test_xml_text_is_well_formed_whatever_the_cell_wrote() -> None:
    text = xml_text("log tail:\n\x1b[31mred\x00\ufffe\ttab")
    ET.fromstring(ET.tostring(ET.Element("error", message=text)))
    assert text == "log tail:\n\\x1b[31mred\\x00\\ufffe\ttab"


def write_hostile_artifacts(directory: Path) -> None:
    """A cell directory as a malicious CI job could upload it: hostile params, test names and messages."""
    cell = Cell(
        id="cpu-gloo-ws2-x", device="cpu", backend="gloo", world_size=2, tests=("tests",),
        params={"flavour": "[/]p[/]\x1b[31m"},
    )
    write_cell_json(cell, directory)
    suite = ET.Element("testsuite", name=cell.id, tests="1", failures="1")
    case = ET.SubElement(
        suite, "testcase", classname="tests.test_x", name="test_y[a\n::add-mask::from-name ##[error]n`x`]"
    )
    message = "ranks 0, 1 of 2: boom [/] \x9b31m\n  ::error file=forged.py::from-message\r::stop-commands::t"
    ET.SubElement(case, "failure", message=message).text = message + "\ntests/test_x.py:3: AssertionError"
    ET.ElementTree(suite).write(directory / "junit.xml", encoding="utf-8", xml_declaration=True)
    reason = "1 failed\n::add-mask::from-reason"
    result = CellResult.of_cell(cell, "failed", reason, counts=TestCounts(failed=1))
    write_completion_record(result, directory)


def test_harness_report_of_hostile_artifacts_forges_nothing(tmp_path: Path) -> None:
    write_hostile_artifacts(tmp_path / "cell")
    env = harness_env(GITHUB_ACTIONS="true")
    done = run_harness("report", "cell", "--markdown", "r.md", "--json", "r.json", cwd=tmp_path, env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and forged_commands(done.stdout + done.stderr) == []
    assert not TERMINAL_CONTROLS.search(done.stdout)
    [own] = runner_commands(done.stdout)  # the harness's annotation of the failure, still there
    assert (own.name, own.properties["file"], own.properties["line"]) == ("error", "tests/test_x.py", "3")
    assert "[/]p[/]" in done.stdout  # the params, shown literally (a MarkupError on main)
    markdown = (tmp_path / "r.md").read_text()
    assert forged_commands(markdown) == [] and not TERMINAL_CONTROLS.search(markdown)
    heading = next(line for line in markdown.splitlines() if line.startswith("### "))
    shown = code_span_content(heading.split(" · ")[1])
    assert shown == "tests/test_x.py::test_y[a\\n::add-mask::from-name ##\\[error]n`x`]"
    # The raw record keeps what the cell said: escaping is for display only.
    record = json.loads((tmp_path / "r.json").read_text())
    assert record["cells"][0]["params"]["flavour"] == "[/]p[/]\x1b[31m"
