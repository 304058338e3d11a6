"""Bring a home's copied Cedar schema up to the one zerolane ships.

``zerolane init`` copies the shipped ``schema.cedarschema`` into the home's policy
folder, and the home keeps that copy: a later zerolane whose decisions send more
context (``context.risk``, the ``Risk`` type) finds an older schema there, every
request fails its schema check, and every decision is denied ``policy.error`` (fail
closed) until the schema is replaced.

:func:`schema_state` tells the home's copy apart: the shipped one
(:attr:`SchemaState.CURRENT`), an earlier shipped one, byte for byte
(:attr:`SchemaState.OUTDATED`: known by its SHA-256, :data:`EARLIER_SHIPPED`), or one
the admin wrote or edited (:attr:`SchemaState.EDITED`), and whether it declares
``context.risk``. :func:`upgrade_schema` replaces an earlier shipped one with the
shipped one (an edited one only when forced), keeping the old file beside it
(``schema.cedarschema.bak-<UTC time>``, which the loader never reads), and puts the
old one back when the folder's policies do not load over the new schema: a home is
never left with a set that is refused.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from zerolane.errors import Conflict, InvalidInput
from zerolane.policy.engine import PolicyLoadError
from zerolane.policy.loader import SCHEMA_NAME, SHIPPED_SCHEMA, load_snapshot

#: the SHA-256 of every schema zerolane shipped before the one it ships now, and the
#: release that shipped it (the default set's history: git log of policy/default)
EARLIER_SHIPPED: dict[str, str] = {
    "b148e0a5e16a62521d8d3e8a8cf43aab556a644b386a5ddcd0966cd9a8d58a03": "3d8d18b (the PDP)",
    "0e1bc9efc9586e489cb7c1ef95d866051531258de7f9489d516ce05927a3ff40": "46775d6 (MCP calls)",
    "39aa3e3155660638d0029be4f04784c2d028adf5c9ef36c402a0eb3c36cd3a64": "9d17cef (delegation)",
    "00661dd6a19ba3d33eda6aa85b4a4717719fb1fc4495dae21d013cc9d5b8bab6": "aa0203e (MCP method)",
}
#: what to run, named in every message about an outdated schema
COMMAND = "zerolane policy schema upgrade"
#: the reason id of a decision denied because the home's schema is outdated
SCHEMA_OUTDATED = "policy.schema_outdated"
#: a schema that declares ``context.risk`` (the attribute the decider sends)
_RISK = re.compile(r"\brisk\s*:")
_BACKUP = "{name}.bak-{stamp}"
_MODE = 0o644


class SchemaState(enum.StrEnum):
    """What a home's schema is, next to the shipped one."""

    #: the shipped schema, byte for byte
    CURRENT = "current"
    #: an earlier shipped schema, byte for byte: upgraded without asking
    OUTDATED = "outdated"
    #: a schema the admin wrote or edited: replaced only with ``--force``
    EDITED = "edited"
    #: no schema in the folder
    MISSING = "missing"


@dataclass(frozen=True, slots=True)
class SchemaCheck:
    """A home's schema as :func:`schema_state` found it."""

    path: Path
    state: SchemaState
    #: the schema declares ``context.risk`` (else every decision fails its check)
    has_risk: bool
    #: the release that shipped it (an outdated one)
    shipped_by: str | None = None

    @property
    def advice(self) -> str | None:
        """What the admin should do, when decisions fail because of this schema."""
        if self.state is SchemaState.OUTDATED:
            return (
                f"{self.path} is the schema zerolane shipped in {self.shipped_by}: it has no "
                f"Risk type, so every decision is denied (policy.error); run '{COMMAND}'"
            )
        if self.state is SchemaState.EDITED and not self.has_risk:
            return (
                f"{self.path} declares no context.risk (the Risk type of the shipped "
                f"schema), so every decision is denied (policy.error): add it, or run "
                f"'{COMMAND} --force' to replace it with the shipped one (yours is kept)"
            )
        return None


@dataclass(frozen=True, slots=True)
class Upgraded:
    """What :func:`upgrade_schema` did: ``backup`` None when nothing was replaced."""

    path: Path
    before: SchemaState
    backup: Path | None


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def schema_state(directory: Path) -> SchemaCheck:
    """How ``directory``'s ``schema.cedarschema`` compares to the shipped one."""
    path = directory / SCHEMA_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return SchemaCheck(path, SchemaState.MISSING, has_risk=False)
    shipped = SHIPPED_SCHEMA.read_bytes()
    if data == shipped:
        return SchemaCheck(path, SchemaState.CURRENT, has_risk=True)
    has_risk = bool(_RISK.search(data.decode("utf-8", "replace")))
    release = EARLIER_SHIPPED.get(_digest(data))
    if release is not None:
        return SchemaCheck(path, SchemaState.OUTDATED, has_risk=has_risk, shipped_by=release)
    return SchemaCheck(path, SchemaState.EDITED, has_risk=has_risk)


def upgrade_schema(directory: Path, *, force: bool, now: dt.datetime) -> Upgraded:
    """Replace ``directory``'s schema with the shipped one when it is an earlier shipped
    one (or, with ``force``, one the admin edited), keeping the old one beside it.

    Raises :class:`~zerolane.errors.Conflict` ``policy.schema_edited`` for an edited
    schema without ``force``, :class:`~zerolane.errors.InvalidInput`
    ``policy.schema_missing`` when there is none, and the loader's
    :class:`~zerolane.policy.engine.PolicyLoadError` when the folder's policies do
    not load over the shipped schema (the old one is then back in place)."""
    check = schema_state(directory)
    if check.state is SchemaState.CURRENT:
        return Upgraded(check.path, check.state, None)
    if check.state is SchemaState.MISSING:
        raise InvalidInput("policy.schema_missing", f"no {SCHEMA_NAME} in {directory}")
    if check.state is SchemaState.EDITED and not force:
        raise Conflict(
            "policy.schema_edited",
            f"{check.path} is not a schema zerolane shipped (it was edited): merge the "
            f"shipped one ({SHIPPED_SCHEMA}) into it by hand, or run '{COMMAND} --force' "
            "to replace it (yours is kept beside it)",
        )
    backup = _backup_path(check.path, now)
    old = check.path.read_bytes()
    with backup.open("xb") as kept:  # never overwrites: fails if the name is taken
        kept.write(old)
    _write(check.path, SHIPPED_SCHEMA.read_bytes())
    try:
        load_snapshot(directory)
    except PolicyLoadError:
        _write(check.path, old)  # a refused set is never left in place
        backup.unlink()
        raise
    return Upgraded(check.path, check.state, backup)


def _backup_path(path: Path, now: dt.datetime) -> Path:
    stamp = now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    backup = path.with_name(_BACKUP.format(name=path.name, stamp=stamp))
    counter = 1
    while backup.exists():
        counter += 1
        backup = path.with_name(_BACKUP.format(name=path.name, stamp=f"{stamp}-{counter}"))
    return backup


def _write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all (a watching engine never reads
    half a schema). The temporary file is made anew, never opened through a link left
    at its name (which would have the schema written, and its mode set, elsewhere)."""
    temporary = path.with_name(f".{path.name}.upgrade")
    temporary.unlink(missing_ok=True)  # a leftover (or a link): the link itself goes
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with os.fdopen(os.open(temporary, flags, _MODE), "wb") as file:
        file.write(data)
        os.fchmod(file.fileno(), _MODE)  # whatever the umask
    os.replace(temporary, path)
