"""Shared by the untrusted-text tests: what a GitHub runner and a terminal would act on in an output."""

from __future__ import annotations

import re
from dataclasses import dataclass

# The commands the runner acts on (actions/runner's ActionCommandManager and its extensions).
RUNNER_COMMANDS = frozenset(
    "error warning notice debug add-mask stop-commands echo group endgroup set-output set-env add-path "
    "save-state add-matcher remove-matcher".split()
)
# .NET's StreamReader.ReadLine, as the runner reads a step's output: CR, LF or CRLF end a line.
RUNNER_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# An escape, a C1 control or DEL: anything a terminal acts on instead of showing.
TERMINAL_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclass
class WorkflowCommand:
    """One line the runner would execute, parsed as its ActionCommand.TryParseV2 does."""

    line: str
    name: str
    properties: dict[str, str]
    data: str

    @property
    def at_line_start(self) -> bool:
        return not self.line[:1].isspace()


def runner_commands(output: str) -> list[WorkflowCommand]:
    """Every `::name ...::data` command the runner would take from `output` (after any leading blanks)."""
    commands = []
    for line in RUNNER_LINE_BREAK.split(output):
        body = line.lstrip()
        end = body.find("::", 2)
        if not body.startswith("::") or end < 0:
            continue
        info = body[2:end]
        name, _, rest = info.partition(" ")
        if name not in RUNNER_COMMANDS:
            continue
        pairs = (part.split("=", 1) for part in rest.strip().split(",") if "=" in part)
        commands.append(WorkflowCommand(line, name, dict(pairs), body[end + 2 :]))
    return commands


def legacy_commands(output: str) -> list[str]:
    """Lines holding `##[`, which the runner parses as a legacy command wherever it stands."""
    return [line for line in RUNNER_LINE_BREAK.split(output) if "##[" in line]


def forged_commands(output: str) -> list[str]:
    """Command lines the harness did not write: any but its own annotations (error, warning or notice
    at the start of a line, naming no file the attacker chose)."""
    return [
        command.line
        for command in runner_commands(output)
        if not command.at_line_start
        or command.name not in ("error", "warning", "notice")
        or command.properties.get("file") == "forged.py"
    ] + legacy_commands(output)
