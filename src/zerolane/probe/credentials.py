"""How the probe gets what a legitimate client holds: the credential port, and the
sources that need no zerolane home (a static bearer token; an OAuth token endpoint).

A source says which :class:`~zerolane.probe.model.Need` it meets; scenarios that need
more are reported ``not_applicable``. A zerolane home (the probe opens its own tasks)
is a source the command line builds (``zerolane.cli.probe_home``), as it needs the
server side.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from zerolane.probe.model import Need
from zerolane.tokens.rfc9449 import PrivateKey

#: the largest secret file read (a token, a client secret)
MAX_SECRET_FILE = 64 * 1024


def read_secret_file(path: Path) -> str:
    """The text of a secret file, stripped. Raises ``OSError`` (never blocking, never
    reading without bound) for what is not a regular file (a FIFO would hang the
    probe, a device never end) or is larger than :data:`MAX_SECRET_FILE`, and
    ``UnicodeDecodeError`` for what is not UTF-8."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{path} is not a regular file")
        data = file.read(MAX_SECRET_FILE + 1)
    if len(data) > MAX_SECRET_FILE:
        raise OSError(f"{path} is larger than {MAX_SECRET_FILE // 1024} KiB")
    return data.decode("utf-8").strip()


class NotOffered(Exception):
    """The source cannot do this: a :class:`~zerolane.probe.model.Need` it does not
    meet. The runner reports a scenario that runs into it ``not_applicable``."""


class IssuerRefused(Exception):
    """The issuer refused to issue (a delegation, a token): the refusal the scenario
    wanted, or the twin's failure. ``status``/``reason`` as the issuer answered."""

    def __init__(self, status: int | None, reason: str, *, url: str = "") -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.url = url


@dataclass
class Credential:
    """A token the probe holds: the string, the key it is bound to (``None`` for a
    bearer token) and, for the source, whatever handle ends or delegates it."""

    token: str
    key: PrivateKey | None = None
    handle: Any = field(default=None, repr=False)

    @property
    def scheme(self) -> str:
        return "DPoP" if self.key is not None else "Bearer"


class CredentialSource(Protocol):
    """Where the probe's legitimate credentials come from."""

    @property
    def kind(self) -> str:
        """``zerolane``, ``client_credentials``, ``token_exchange`` or ``static``."""
        ...

    @property
    def meets(self) -> frozenset[Need]:
        """What this source can do (besides issuing a credential)."""
        ...

    def issue(self, *, ttl: int | None = None, audience: str | None = None) -> Credential:
        """A new credential (a new task, a new grant); ``ttl`` seconds when the source
        meets ``SHORT_LIVED``, another ``audience`` when it meets ``OTHER_AUDIENCE``.
        Raises :class:`IssuerRefused` when the issuer says no."""
        ...

    def complete(self, credential: Credential) -> None:
        """End the credential's task as done (``LIFECYCLE``)."""
        ...

    def revoke(self, credential: Credential) -> None:
        """Revoke the credential's task (``LIFECYCLE``)."""
        ...

    def delegate(self, credential: Credential, *, wider: bool) -> Credential:
        """A child of ``credential`` (``DELEGATION``): narrower than its parent, or, with
        ``wider``, asking for more than the parent holds (which the issuer must refuse:
        :class:`IssuerRefused`)."""
        ...

    def sign(self, claims: Mapping[str, Any]) -> str:
        """``claims`` signed by the issuer's key (``ISSUER_KEY``)."""
        ...

    def issuer_jwks(self) -> list[dict[str, Any]]:
        """The issuer's public keys (``ISSUER_JWKS``)."""
        ...

    def close(self) -> None:
        """End every credential still open."""
        ...

    # A source may also offer ``secrets() -> tuple[str, ...]``: what it holds that must
    # never be shown (a client secret, a subject token, a static token); the context
    # has the wire mask them wherever they appear in the evidence.


class StaticBearer:
    """A static bearer token, for targets that offer only that: nothing but the token,
    so every scenario that needs more is ``not_applicable``."""

    kind = "static"
    meets: frozenset[Need] = frozenset()

    def __init__(self, token: str) -> None:
        if not token or any(c.isspace() for c in token):
            raise ValueError("a bearer token is one word")
        self._token = token

    def issue(self, *, ttl: int | None = None, audience: str | None = None) -> Credential:
        return Credential(self._token)

    def complete(self, credential: Credential) -> None:
        raise NotOffered("a static token has no task to complete")

    def revoke(self, credential: Credential) -> None:
        raise NotOffered("a static token has no task to revoke")

    def delegate(self, credential: Credential, *, wider: bool) -> Credential:
        raise NotOffered("a static token cannot be delegated")

    def sign(self, claims: Mapping[str, Any]) -> str:
        raise NotOffered("the probe does not hold the issuer's key")

    def issuer_jwks(self) -> list[dict[str, Any]]:
        raise NotOffered("no issuer is known for a static token")

    def secrets(self) -> tuple[str, ...]:
        return (self._token,)

    def close(self) -> None:
        return None
