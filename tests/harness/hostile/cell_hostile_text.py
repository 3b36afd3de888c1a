"""A cell whose test ids, failure messages and output are hostile text (run by test_untrusted_output.py).

Each string is one that a CI runner, a terminal or a Markdown renderer would act on if the harness passed
it through: GitHub workflow commands (`::cmd::`, `##[cmd]`), escape sequences (CSI, OSC-8 links, C1), Rich
markup, backticks, HTML and table pipes. HARNESS_PARAM_FLAVOUR picks what the cell does: `fails` (tests
fail with hostile ids and messages), `hangs` (a test whose id holds `[/]` outlives the cell's timeout) or
`crashes` (collection breaks and hostile lines end the log, which the cell's reason quotes).
"""

import atexit
import os
import time

import pytest

FLAVOUR = os.environ.get("HARNESS_PARAM_FLAVOUR", "fails")
ESC_TEXT = (
    "\x1b[2J\x1b[31mred\x1b[0m \x1b]8;;https://evil.example/\x1b\\osc8-link\x1b]8;;\x1b\\ \x9b31mC1 \x7fDEL"
)
FORGED = [
    "::error file=forged.py,line=1::forged-by-line",
    "  ::add-mask::forged-mask",
    "\t::stop-commands::forged-stop",
    "x ##[error]forged-legacy",
]
IDS = [
    "::error file=forged.py,line=1::forged-id",
    "##[error]forged-legacy-id",
    "[bold red]styled[/]",
    "[link=https://evil.example/]click[/link]",
    "tick`two``three```<img src=x onerror=alert(1)>|pipe|[md](https://evil.example/)",
]

if FLAVOUR == "crashes":
    # Printed once pytest has let go of the output (atexit), so the lines reach the cell's log as they are.
    atexit.register(lambda: print("\n".join([*FORGED, ESC_TEXT, "[/] [bold]markup[/bold]"]), flush=True))
    raise RuntimeError("this flavour breaks collection, so the cell's reason quotes its log")


@pytest.mark.skipif(FLAVOUR != "fails", reason="fails flavour only")
@pytest.mark.parametrize("text", [pytest.param(text, id=text) for text in IDS])
def test_hostile_id_fails(text):
    # The first line of the message reaches progress.jsonl (ESC intact), the rest junit.xml.
    first = f"{text} {ESC_TEXT} ##[error]forged-in-message [/]"
    message = "\n".join([first, *FORGED]) + "\r::error::after-cr"
    raise AssertionError(message)


@pytest.mark.skipif(FLAVOUR != "hangs", reason="hangs flavour only")
@pytest.mark.parametrize("text", [pytest.param(1, id="[/]::error::hang")])
def test_hangs_past_the_cell_timeout(text):
    time.sleep(600)
