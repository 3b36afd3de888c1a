"""Run inside a container by tests/docker: a hostile test that plants links where the harness reads results.

Each results file the harness copies out becomes a link to a host path (HOST_SECRET, as the host names
it: a naive harness would resolve it on the host), then the test kills its pytest so nothing overwrites
the links.
"""

import os
import signal
from pathlib import Path


def test_plants_links_and_kills_pytest():
    results = Path("/results")
    secret = os.environ["HOST_SECRET"]
    for name in ("junit.xml", "fingerprint.json", "progress.jsonl", "log.txt", "cell.json", "result.json"):
        path = results / name
        path.unlink(missing_ok=True)
        path.symlink_to(secret)
    # Under --forked this test runs in a child of pytest: kill pytest itself.
    parent = os.getppid()
    is_pytest = b"pytest" in Path(f"/proc/{parent}/cmdline").read_bytes()
    os.kill(parent if is_pytest else os.getpid(), signal.SIGKILL)
