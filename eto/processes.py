"""Processes that end with the one that started them, even when it is killed with SIGKILL and no
cleanup code runs: Linux's parent-death signal (``prctl(PR_SET_PDEATHSIG)``), and a watch on a
process that is not one's parent (``exit_with``). Elsewhere, explicit stops are the only way.

Used by the FastChat launcher (its servers), by the run's stages (their commands) and by the
run's server daemon, which follows run_eto.sh itself.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Callable, Optional

PR_SET_PDEATHSIG = 1


def _set_parent_death_signal(sig: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    return ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, sig) == 0


def stop_with_parent(parent_pid: int) -> Optional[Callable[[], None]]:
    """A ``preexec_fn`` for ``subprocess.Popen``: the child gets SIGTERM when ``parent_pid`` (the
    process starting it) dies."""
    if not sys.platform.startswith("linux"):
        return None

    def set_parent_death_signal() -> None:
        _set_parent_death_signal(signal.SIGTERM)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return set_parent_death_signal


def end_with_parent(driver: Optional[int] = None) -> None:
    """This process gets SIGTERM when its parent dies; exits at once if ``driver`` (the process
    that runs the whole, its parent or an ancestor) has already ended."""
    _set_parent_death_signal(signal.SIGTERM)
    if driver and not alive(driver):
        sys.exit(f"error: the process that runs this one ({driver}) has ended")


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie has ended its work)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def exit_with(pid: int, poll: float = 0.5) -> None:
    """SIGTERM to this process once ``pid`` (any process, not only the parent) has ended: a thread
    waits on a pidfd where the kernel has them, else polls."""

    def watch() -> None:
        try:
            fd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            fd = None
        if fd is not None:
            import select

            select.select([fd], [], [])  # readable once the process has exited
            os.close(fd)
        while alive(pid):
            time.sleep(poll)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name=f"exit-with-{pid}", daemon=True).start()


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait until ``pid`` has ended (reaping it if it is our child); True if it did in time."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done == pid:
                return True
        except ChildProcessError:  # not our child: someone else reaps it
            pass
        if not alive(pid):
            return True
        time.sleep(0.1)
    return not alive(pid)
