"""Static secrets injected as a header: from a 0600 file, or (legacy) the environment.

A static secret is the same for every task, so it is the weakest grant: prefer
per-task keys (:mod:`zerolane.grants.hmac_keys`). It still never reaches the agent.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from zerolane.errors import InvalidInput
from zerolane.grants.base import check_header_value, read_private_file, render_format

logger = logging.getLogger("zerolane.grants")


class StaticSecret:
    """Injects ``header: <value>`` into every allowed request, whatever the task."""

    def __init__(self, header: str, value: str, *, origin: str) -> None:
        self.header = header
        self._value = check_header_value(value, f"the credential from {origin}")
        self.origin = origin

    def header_for(self, task_id: str, expires_at: float) -> tuple[str, str]:
        return self.header, self._value

    def __repr__(self) -> str:  # never show the secret
        return f"StaticSecret(header={self.header!r}, origin={self.origin!r})"

    @classmethod
    def from_file(cls, path: Path, *, header: str, fmt: str) -> StaticSecret:
        """The secret in ``path`` (mode 0600 or refused), rendered into ``fmt``."""
        raw = read_private_file(path)
        try:
            secret = raw.decode("ascii")
        except UnicodeDecodeError as err:
            raise InvalidInput("grant.value", f"the secret in {path} is not ASCII") from err
        return cls(header, render_format(fmt, secret), origin=f"file {path}")

    @classmethod
    def from_env(cls, name: str, *, header: str, fmt: str) -> StaticSecret:
        """The secret in environment variable ``name`` (legacy: logged once, here)."""
        secret = os.environ.get(name, "")
        if not secret:
            raise InvalidInput("grant.env", f"environment variable {name} is not set or empty")
        logger.warning(
            "credential for header %s comes from environment variable %s: legacy, "
            "prefer secret_file (mode 0600) or per-task HMAC keys",
            header,
            name,
        )
        return cls(header, render_format(fmt, secret), origin=f"environment variable {name}")
