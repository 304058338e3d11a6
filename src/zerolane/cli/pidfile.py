"""``<home>/run/zerolane.pid``: which ``zerolane up`` serves a home right now."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from zerolane.fsutil import ensure_private_dir, write_private

PID_FILE = Path("run") / "zerolane.pid"
#: the base URL of every server the running ``zerolane up`` listens on (``zerolane status``)
LISTENERS_FILE = Path("run") / "listeners.json"


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


def write_listeners(home: Path, listeners: dict[str, str]) -> None:
    """Record where this ``up`` listens (after :func:`write_own`)."""
    doc = {"pid": os.getpid(), "listeners": listeners}
    write_private(home / LISTENERS_FILE, json.dumps(doc, sort_keys=True).encode())


def read_listeners(home: Path, pid: int) -> dict[str, str]:
    """Where the ``up`` of ``pid`` listens, as it recorded it ({} if it did not)."""
    try:
        doc = json.loads((home / LISTENERS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict) or doc.get("pid") != pid:
        return {}
    listeners = doc.get("listeners")
    if not isinstance(listeners, dict):
        return {}
    return {str(k): str(v) for k, v in listeners.items()}


def remove_own(home: Path) -> None:
    """Remove the pid file (and the listeners) if it names this process (never another
    ``up``'s)."""
    pid_file = home / PID_FILE
    with contextlib.suppress(OSError):
        if pid_file.read_text().strip() == str(os.getpid()):
            with contextlib.suppress(OSError):
                (home / LISTENERS_FILE).unlink()
            pid_file.unlink()
