"""What every credential source shares: the Protocol the gateway calls, and secret files.

A credential source turns "this request of task T is allowed" into one header the
gateway injects upstream. The agent never receives it, and nothing here logs it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Protocol

from zerolane.errors import InvalidInput

MAX_SECRET_BYTES = 64 * 1024


class CredentialSource(Protocol):
    """Mints (or looks up) the header injected into an allowed request of a task."""

    #: the header name, so the gateway also strips any client-sent copy of it
    header: str

    def header_for(self, task_id: str, expires_at: float) -> tuple[str, str]:
        """``(header name, header value)`` for one request of ``task_id``."""
        ...


def read_private_file(path: Path) -> bytes:
    """The bytes of a secret file, refused unless it is a regular file of mode 0600
    (or stricter); one trailing newline is dropped."""
    try:
        info = os.stat(path)
    except OSError as err:
        raise InvalidInput("grant.file", f"cannot read secret file {path}: {err.strerror}") from err
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInput("grant.file", f"secret file {path} is not a regular file")
    if info.st_mode & 0o077:
        raise InvalidInput(
            "grant.file_mode",
            f"secret file {path} is readable by others (mode {stat.S_IMODE(info.st_mode):o});"
            f" run: chmod 600 {path}",
        )
    if info.st_size > MAX_SECRET_BYTES:
        raise InvalidInput("grant.file", f"secret file {path} is larger than 64 KiB")
    data = path.read_bytes()
    if data.endswith(b"\r\n"):
        return data[:-2]
    return data[:-1] if data.endswith(b"\n") else data


def check_header_value(value: str, what: str) -> str:
    """``value`` if it can go in an HTTP header as is: printable ASCII, no CR/LF."""
    if not value or not all(" " <= c <= "~" for c in value) or value != value.strip():
        raise InvalidInput(
            "grant.value", f"{what} must be printable ASCII without surrounding spaces"
        )
    return value


def render_format(fmt: str, secret: str) -> str:
    """``fmt`` with its one ``{secret}`` placeholder replaced (no ``str.format``)."""
    if fmt.count("{secret}") != 1 or fmt.replace("{secret}", "").count("{"):
        raise InvalidInput("grant.format", "a credential format holds '{secret}' exactly once")
    return fmt.replace("{secret}", secret)
