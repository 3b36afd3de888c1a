"""Run inside a container by tests/docker: a hostile test that plants privilege for the host in /results.

It copies `id` there with the set-uid bit and again with the set-gid bit, tries to make a device node
(the kernel's memory device, which reads the host's RAM when opened), and records what worked; then it
says so (`/results/planted`) and waits until the host has looked (`/results/host-looked`, at most
HOST_LOOK_S), so the host can try the files while the cell still runs.
"""

import errno
import json
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

RESULTS = Path("/results")
HOST_LOOK_S = 120.0


def _mount_options(target: str) -> str:
    for line in Path("/proc/self/mounts").read_text().splitlines():
        fields = line.split()
        if fields[1] == target:
            return fields[3]
    return ""


def test_plants_set_uid_files_and_a_device_node(record_property):
    planted = {}
    for name, bits in (("suid-id", stat.S_ISUID), ("sgid-id", stat.S_ISGID)):
        shutil.copy("/usr/bin/id", RESULTS / name)
        os.chmod(RESULTS / name, 0o755 | bits)
        planted[name] = oct(stat.S_IMODE(os.stat(RESULTS / name).st_mode))
    try:
        os.mknod(RESULTS / "mem", 0o666 | stat.S_IFCHR, os.makedev(1, 1))
        mknod = "made"
    except OSError as error:
        mknod = errno.errorcode.get(error.errno, str(error.errno))
    # Inside the cell: does the set-uid copy raise anything here? (no-new-privileges says no)
    inside = subprocess.run([str(RESULTS / "suid-id")], capture_output=True, text=True).stdout.strip()
    record_property(
        "planted",
        json.dumps(
            {
                "modes": planted,
                "mknod": mknod,
                "uid": os.getuid(),
                "gid": os.getgid(),
                "id_inside": inside,
                "results_mount": _mount_options(str(RESULTS)),
            }
        ),
    )
    (RESULTS / "planted").write_text("")
    deadline = time.monotonic() + HOST_LOOK_S
    while not (RESULTS / "host-looked").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
