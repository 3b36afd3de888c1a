"""In the pytest process, reuse mode: which distributed tests ran on fresh ranks instead of the workers, and
why; how often the workers were forked again. Reported in the terminal summary and the progress file."""

from __future__ import annotations

from collections import Counter
from typing import Protocol

import pytest

from harness.common.progress_events import RanOnFreshRanks


class _EventWriter(Protocol):
    def write(self, event: RanOnFreshRanks) -> None: ...


class FreshRankTally:
    """Counts, per kind of reason, the tests reuse mode sent to fresh ranks, and the workers' restarts."""

    def __init__(self, progress: _EventWriter | None) -> None:
        self._progress = progress
        self.distributed_tests = 0
        self.fresh: dict[str, str] = {}  # nodeid -> reason
        self._kinds: Counter[str] = Counter()
        self.restarts: Counter[str] = Counter()  # why the workers were forked again

    def ran_on_workers(self) -> None:
        self.distributed_tests += 1

    def ran_on_fresh_ranks(self, nodeid: str, kind: str, reason: str) -> None:
        """`kind` groups reasons in the summary ('monkeypatched attributes'); `reason` is the detail."""
        self.distributed_tests += 1
        self.fresh[nodeid] = reason
        self._kinds[kind] += 1
        if self._progress is not None:
            self._progress.write(RanOnFreshRanks(nodeid, kind, reason))

    def restarted(self, why: str) -> None:
        self.restarts[why] += 1

    def summary_line(self) -> str:
        """'... 3 of 120 distributed tests ran on fresh ranks (2 ..., 1 ...); workers forked again ...'."""
        kinds = ", ".join(f"{count} {kind}" for kind, count in self._kinds.most_common())
        line = (
            f"comm-harness reuse mode: {len(self.fresh)} of {self.distributed_tests} distributed tests ran "
            f"on fresh ranks" + (f" ({kinds})" if kinds else "")
        )
        if self.restarts:
            restarts = ", ".join(f"{count} {why}" for why, count in self.restarts.most_common())
            line += f"; workers forked again {sum(self.restarts.values())} times ({restarts})"
        return line

    def write_summary(self, terminal: pytest.TerminalReporter) -> None:
        terminal.write_line(self.summary_line())
