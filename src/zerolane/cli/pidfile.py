"""``<home>/run/zerolane.pid``: which ``zerolane up`` serves a home right now."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from zerolane.fsutil import ensure_private_dir, write_private

PID_FILE = Path("run") / "zerolane.pid"


def server_pid(home: Path) -> int | None:
    """The pid in ``<home>/run/zerolane.pid`` if that process is alive (a stale file,
    left by a killed process, names none)."""
    try:
        pid = int((home / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid  # alive, but another user's
    return pid


def write_own(home: Path) -> None:
    pid_file = home / PID_FILE
    ensure_private_dir(pid_file.parent)
    write_private(pid_file, f"{os.getpid()}\n".encode())


def remove_own(home: Path) -> None:
    """Remove the pid file if it names this process (never another ``up``'s)."""
    pid_file = home / PID_FILE
    with contextlib.suppress(OSError):
        if pid_file.read_text().strip() == str(os.getpid()):
            pid_file.unlink()
