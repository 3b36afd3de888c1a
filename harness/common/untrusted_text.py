"""Text that came from a cell, made harmless wherever the harness prints or writes it.

Test ids, failure messages, log tails, reasons, params, fingerprints, bench documents: what a cell's files
say was written by the code under test, or by whoever made the artifacts `harness report` reads. Every
place that shows such text passes it through one function here, picked by where the text goes:

- `one_line`: control characters (C0, DEL, C1), Unicode line breaks, lone surrogates and invisible format
  characters (bidi overrides, zero-width, soft hyphen) become visible escapes such as `\\x1b` and `\\n`, so
  the text stays on its line and cannot move the cursor, set colours or titles, or open an OSC-8 link.
- `log_line`: a line of stdout or stderr, which in CI is the job's log. GitHub's runner executes a line that
  starts with `::` after any whitespace, and `##[` anywhere in a line: both get a backslash (`\\::`, `##\\[`).
- `print_line`, `terminal_text`: the terminal through Rich, never parsed for markup or emoji (a Text is
  not), never wrapped (a wrap could start a line with `::`).
- `annotation_data`, `annotation_property`: the untrusted parts of the harness's own `::error ...::` lines.
- `markdown_code`, `markdown_text`, `markdown_block_line`: Markdown that cannot leave its code span, table
  cell or fenced block (no HTML, links, emphasis, emoji, or pipes splitting a row).
- `xml_text`: attribute and text values of the XML the harness writes (XML 1.0 allows no other controls).
"""

from __future__ import annotations

import re
import unicodedata

from rich.console import Console
from rich.text import Text

# Categories of characters that do something other than show themselves: controls, format characters
# (zero-width, bidi, soft hyphen: .NET's culture-aware matching, as the runner's `##[` search uses, may
# ignore them), lone surrogates (unencodable), line and paragraph separators.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]")
# Not characters at all (XML 1.0 forbids them too).
_NONCHARACTERS = "\ufffe\uffff"
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_LINE_BREAK = re.compile(r"(\r|\n)")
_LEGACY_COMMAND = "##["
_COMMAND_START = "::"


def _escape_invisible(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    if unicodedata.category(char) not in _INVISIBLE_CATEGORIES and char not in _NONCHARACTERS:
        return char
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def one_line(text: object) -> str:
    """`text` as one line of visible characters: every control, format or line-break character escaped."""
    return _NOT_PRINTABLE_ASCII.sub(_escape_invisible, str(text))


def log_line(text: object) -> str:
    """One line for stdout/stderr (a CI job's log): `one_line`, and nothing the runner takes as a command."""
    line = one_line(text).replace(_LEGACY_COMMAND, "##\\[")
    body = line.lstrip()
    if body.startswith(_COMMAND_START):
        line = line[: len(line) - len(body)] + "\\" + body
    return line


def terminal_text(text: object, style: str = "") -> Text:
    """A Rich renderable showing `text` as it is (a Text is never parsed for markup or emoji)."""
    return Text(log_line(text), style=style)


def print_line(console: Console, text: object, style: str = "") -> None:
    """Print one line: neutralised, never parsed, never wrapped (a wrapped line could start with `::`)."""
    console.print(terminal_text(text, style), soft_wrap=True)


def _github_escape(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def annotation_data(text: object) -> str:
    """The message of a workflow command: its line breaks kept as %0D/%0A (GitHub shows them), each line
    neutralised, so the whole command stays one physical line of the log."""
    parts = _LINE_BREAK.split(str(text))
    return "".join(_github_escape(part if part in ("\r", "\n") else log_line(part)) for part in parts)


def annotation_property(text: object) -> str:
    """A property value of a workflow command (`file=`, `title=`): one line, `:` and `,` escaped too."""
    return _github_escape(log_line(text)).replace(":", "%3A").replace(",", "%2C")


def markdown_code(text: object, *, in_table: bool = False) -> str:
    """An inline code span holding `text` literally: its fence is longer than any backtick run inside."""
    content = log_line(text)
    if not content:
        return ""
    longest = max((len(run) for run in re.findall("`+", content)), default=0)
    fence = "`" * (longest + 1)
    if content[0] in "` " or content[-1] in "` ":
        # CommonMark strips one space from each side when both have one; a backtick needs the gap.
        content = f" {content} "
    if in_table:
        # GFM splits a row at every unescaped pipe, code spans included.
        content = content.replace("|", "\\|")
    return f"{fence}{content}{fence}"


# Anything Markdown (GitHub's flavour) could act on: escapes, code, emphasis (`_` only at a word's edge:
# all_reduce is plain), links and images, HTML and entities, tables, headings, strikethrough, math,
# autolinks (www., scheme://, e-mail) and :emoji: codes.
_MARKDOWN_ACTIVE = re.compile(
    r"[\\`*\[\]<>&|!#~^$\"{}@]|(?<![^\W_])_|_(?![^\W_])|www\.|://|:[\w+-]+:", re.IGNORECASE
)


def markdown_text(text: object, *, in_table: bool = False) -> str:
    """`text` for running Markdown: as it is when plain (a cell id, a short reason), else a code span."""
    plain = str(text)
    if log_line(plain) == plain and not _MARKDOWN_ACTIVE.search(plain):
        return plain
    return markdown_code(plain, in_table=in_table)


def markdown_block_line(text: object) -> str:
    """One line inside a fenced code block (whose fence the caller makes longer than any backtick run)."""
    return log_line(text)


def xml_text(text: object) -> str:
    """A value for XML 1.0, which cannot hold controls other than tab, LF and CR: those shown escaped."""
    return re.sub(r"[^\t\n\r]+", lambda part: one_line(part.group()), str(text))
