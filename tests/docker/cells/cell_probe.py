"""Run inside a container by tests/docker: records what the container looks like from inside.

Writes probe.json into the cell's results directory (the parent of the progress file the cell runner
names) for the outer test to check: environment, user, and whether the repository can be written.
"""

import errno
import json
import os
from pathlib import Path


def test_record_the_container():
    results = Path(os.environ["HARNESS_PROGRESS_FILE"]).parent
    try:
        (Path.cwd() / "written-by-a-cell").write_text("must not be possible")
        repo_write = "succeeded"
    except OSError as error:
        repo_write = errno.errorcode.get(error.errno, str(error.errno))
    probe = {
        "env": dict(os.environ),
        "uid": os.getuid(),
        "gid": os.getgid(),
        "cwd": str(Path.cwd()),
        "repo_write": repo_write,
        "shm_bytes": os.statvfs("/dev/shm").f_blocks * os.statvfs("/dev/shm").f_frsize,
    }
    (results / "probe.json").write_text(json.dumps(probe))
