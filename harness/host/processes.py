"""Whether a process of this host is running: the one check the guardian and the container clean-up share."""

from __future__ import annotations

import psutil


def running(process: psutil.Process) -> bool:
    """`process` runs, as opposed to gone or a zombie waiting to be reaped."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def pid_alive(pid: int | None) -> bool:
    """Process `pid` is running, as opposed to gone or a zombie waiting to be reaped."""
    if pid is None:
        return False
    try:
        return running(psutil.Process(pid))
    except psutil.Error:
        return False
