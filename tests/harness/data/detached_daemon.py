"""A hostile test for the local executor's containment: it leaves a daemon none of the old tags could find.

The test forks; the child starts a session of its own (setsid) and forks again; the grandchild closes the
cell's output, writes its pid to $DAEMON_PID_FILE and becomes a Python that renames itself (argv[0] and
the kernel's process name) with an EMPTY environment, so HARNESS_RUN_ID is gone, then sleeps an hour. Then,
by $DAEMON_THEN: "return" (the cell ends normally), "hang" (for a kill -9 of the harness), or
"kill-runner" (SIGKILL the cell runner, the subreaper above pytest, so that orphans skip it).
"""

import os
import signal
import sys
import time

DAEMON_NAME = "kworker-idle"
RENAMED_SLEEPER = (
    "import ctypes, sys, time\n"
    "ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)  # PR_SET_NAME\n"
    "open(sys.argv[2] + '.tmp', 'w').write(str(__import__('os').getpid()))\n"
    "__import__('os').rename(sys.argv[2] + '.tmp', sys.argv[2])\n"
    "time.sleep(3600)\n"
)


def start_detached_daemon(pid_file: str) -> int:
    """Double-fork a renamed, empty-environment daemon in a session of its own; its pid once it runs."""
    child = os.fork()
    if child == 0:
        try:
            os.setsid()
            if os.fork() == 0:
                null = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(null, fd)
                os.execve(sys.executable, [DAEMON_NAME, "-c", RENAMED_SLEEPER, DAEMON_NAME, pid_file], {})
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    deadline = time.monotonic() + 60
    while not os.path.exists(pid_file):
        assert time.monotonic() < deadline, "the daemon never wrote its pid"
        time.sleep(0.05)
    with open(pid_file) as stream:
        return int(stream.read())


def cell_runner_pid() -> int:
    """The nearest ancestor running harness.cell.runner (pytest may be its child, or, with --forked, the
    parent of this test's process)."""
    pid = os.getppid()
    while pid > 1:
        with open(f"/proc/{pid}/cmdline", "rb") as stream:
            if b"harness.cell.runner" in stream.read():
                return pid
        with open(f"/proc/{pid}/stat") as stream:
            pid = int(stream.read().rpartition(")")[2].split()[1])
    raise AssertionError("no cell runner above this test")


def test_leaves_a_daemon():
    pid = start_detached_daemon(os.environ["DAEMON_PID_FILE"])
    with open(f"/proc/{pid}/environ", "rb") as stream:
        assert stream.read() == b"", "the daemon's environment should be empty"
    then = os.environ.get("DAEMON_THEN", "return")
    if then == "hang":
        time.sleep(3600)
    elif then == "kill-runner":
        os.kill(cell_runner_pid(), signal.SIGKILL)
        time.sleep(3600)
