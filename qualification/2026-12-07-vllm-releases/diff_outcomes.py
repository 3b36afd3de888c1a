"""The tests whose outcome differs between two qualification records: `python diff_outcomes.py OLD NEW`.

OLD and NEW are record folders (their merged junit.xml). Each differing (test, platform, world size) is one
line, "old → new", a known gap written with its reason rather than its note number (numbers depend on the
order gaps were met, so a plain diff of two conformance tables mostly shows renumbering).
"""

from __future__ import annotations

import sys
from pathlib import Path

from harness.conformance_table import read_outcomes
from harness.untrusted_text import log_line


def _outcomes(record: Path) -> dict[tuple[str, str, int], str]:
    found = {}
    for outcome in read_outcomes(record / "junit.xml"):
        status, reason = outcome.status, outcome.reason
        shown = status if status in ("pass", "skip") else f"{status}: {reason}"
        found[(outcome.test, outcome.platform, outcome.world_size)] = shown
    return found


def main(old: str, new: str) -> int:
    before, after = _outcomes(Path(old)), _outcomes(Path(new))
    keys = sorted(set(before) | set(after))
    changed = [key for key in keys if before.get(key) != after.get(key)]
    print(f"{len(changed)} of {len(keys)} outcomes differ between {old} and {new}")
    for test, platform, world_size in changed:
        key = (test, platform, world_size)
        print(f"\n{log_line(test)} [{platform} ws{world_size}]")
        print(f"  - {log_line(before.get(key, 'absent'))}")
        print(f"  + {log_line(after.get(key, 'absent'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
