"""Run inside a container by tests/docker: records what the container looks like from inside.

The findings go into junit.xml as the test's `probe` property (record_property): the one channel from a
cell to the host that the harness copies out, checked.
"""

import errno
import json
import os
from pathlib import Path


def _status_field(name: str) -> str:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    return ""


def _pids_max() -> str:
    # cgroup v2 puts the limit at the root of the container's hierarchy, v1 under its pids controller.
    for path in ("/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max"):
        try:
            return Path(path).read_text().strip()
        except OSError:
            continue
    return ""


def test_record_the_container(record_property):
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
        "cap_eff": _status_field("CapEff"),
        "no_new_privs": _status_field("NoNewPrivs"),
        "pids_max": _pids_max(),
        "results_entries": sorted(os.listdir("/results")),
    }
    record_property("probe", json.dumps(probe))
