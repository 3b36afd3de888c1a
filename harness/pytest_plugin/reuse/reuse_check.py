"""`--dist-reuse check`: each distributed test runs on fresh ranks (fork mode, the reference) and then on the
reuse workers, and fails where the two outcomes differ, naming both. A suite whose every test passes this way
is reuse-safe: reuse mode gives it the verdicts fork mode gives.

Compared: the outcome (passed, failed, skipped, xfailed) and the first line of the message (the exception or
the skip reason, as JUnit's `message` shows it). Both runs share the test's fixture values and its files
(tmp_path): a body that fails when its own output from the first run is there differs for that reason.
"""

from __future__ import annotations

from harness.pytest_plugin.outcomes import Verdict

# Written under reuse mode's summary line (not in check mode): what reuse mode neither carries nor detects
# (docs/plugin.md, "Neither carried nor detected"), so a report from reuse mode says what it could not see.
UNSEEN_BY_REUSE_MODE = (
    "comm-harness reuse mode cannot see what fixtures change in place (an object's contents: a list appended "
    "to, a logger's level) or open resources they hand over (a file descriptor, a socket); "
    "--dist-reuse check runs each test both ways and fails those whose outcomes differ"
)


def compare_modes(fresh: Verdict, reused: Verdict) -> Verdict:
    """The verdict of a test run both ways: the reused one when they agree, else a failure naming both."""
    if (fresh.status, _first_line(fresh)) == (reused.status, _first_line(reused)):
        return reused
    message = (
        "reuse mode and fork mode disagree: fork mode (fresh ranks) "
        f"{_outcome(fresh)}; reuse mode (workers) {_outcome(reused)}"
    )
    details = [f"{mode} mode:\n{v.message}" for mode, v in (("fork", fresh), ("reuse", reused)) if v.message]
    return Verdict("failed", "\n\n".join([message, *details]), reused.warnings)


def _first_line(verdict: Verdict) -> str:
    return verdict.message.strip().partition("\n")[0]


def _outcome(verdict: Verdict) -> str:
    line = _first_line(verdict)
    return f"{verdict.status}: {line}" if line else verdict.status
