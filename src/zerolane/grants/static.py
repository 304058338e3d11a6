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
from zerolane.grants.broker import GrantSecret, GrantTemplate
from zerolane.store.records import TaskRecord

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


class StaticSecretBroker:
    """Legacy: the same static secret for every task, tracked as a lease per task.

    Nothing is minted and nothing can be revoked (the secret outlives every task), so
    it is flagged ``legacy`` for posture findings and never handed to an agent by the
    API; only the gateway injects it.
    """

    name = "static"
    legacy = True

    def __init__(self, secret: StaticSecret) -> None:
        self._secret = secret

    def __repr__(self) -> str:  # never show the secret
        return f"StaticSecretBroker({self._secret!r})"

    def new_handle(self, task: TaskRecord) -> str:
        return f"static:{self._secret.header}"

    def issue(
        self, handle: str, task: TaskRecord, template: GrantTemplate, expires_at: float
    ) -> GrantSecret:
        header, value = self._secret.header_for(task.task_id, expires_at)
        return GrantSecret({"header": header, "value": value})

    def revoke(self, handle: str) -> None:
        return None  # a static secret cannot be revoked per task: rotate it at the source
