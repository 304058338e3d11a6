"""The grant broker plug point: mint a downstream credential for one task, and revoke it.

A broker is one kind of downstream credential (a PostgreSQL role, an HMAC API key, a
static secret). The :class:`~zerolane.grants.leases.LeaseManager` owns the lifecycle:
it records a lease *before* the broker creates anything, and revokes it when the task
ends. A broker only has to make ``issue`` all-or-nothing and ``revoke`` idempotent.

What a broker may be handed comes from the playbook's optional ``grants`` section,
validated here (:func:`parse_template`), so that a playbook naming an unknown broker
or a malformed template is refused when it is applied, not when a task asks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from zerolane.errors import InvalidInput
from zerolane.store.records import TaskRecord

#: a PostgreSQL role an admin created to be granted to task roles (lowercase, unquoted)
PG_ROLE = re.compile(r"[a-z_][a-z0-9_]{0,62}")
MAX_CONNECTION_LIMIT = 100
MAX_KEY_TTL = 86400
#: the options each kind of broker takes in a playbook's ``grants`` section
TEMPLATE_OPTIONS: dict[str, frozenset[str]] = {
    "postgres": frozenset({"role", "connection_limit"}),
    "hmac": frozenset({"ttl"}),
    "static": frozenset(),
}
REQUIRED_OPTIONS: dict[str, frozenset[str]] = {"postgres": frozenset({"role"})}


@dataclass(frozen=True, slots=True)
class GrantTemplate:
    """What a playbook lets its tasks ask of one broker (validated by :func:`parse_template`)."""

    broker: str
    #: postgres: the admin-created NOLOGIN role the task's role is made a member of
    role: str | None = None
    #: postgres: the most concurrent sessions of the task's role
    connection_limit: int | None = None
    #: hmac: the longest a key lives (it never outlives the task)
    ttl: int | None = None

    def as_dict(self) -> dict[str, object]:
        options = {"role": self.role, "connection_limit": self.connection_limit, "ttl": self.ttl}
        return {k: v for k, v in options.items() if v is not None}


def _int(value: object, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput("grant.template", f"{where} must be an integer {low}..{high}")
    return value


def parse_template(broker: str, options: object, where: str = "grants") -> GrantTemplate:
    """Validate one entry of a playbook's ``grants`` section."""
    known = TEMPLATE_OPTIONS.get(broker)
    if known is None:
        raise InvalidInput(
            "grant.broker_unknown",
            f"{where}: unknown broker {broker!r} (one of: {', '.join(sorted(TEMPLATE_OPTIONS))})",
        )
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise InvalidInput("grant.template", f"{where}.{broker} must be a mapping")
    unknown = sorted(str(k) for k in options if k not in known)
    if unknown:
        raise InvalidInput("grant.template", f"{where}.{broker}.{unknown[0]}: unknown option")
    missing = sorted(REQUIRED_OPTIONS.get(broker, frozenset()) - set(options))
    if missing:
        raise InvalidInput("grant.template", f"{where}.{broker}.{missing[0]} is required")
    role = options.get("role")
    if role is not None and not (isinstance(role, str) and PG_ROLE.fullmatch(role)):
        raise InvalidInput(
            "grant.template",
            f"{where}.{broker}.role must be a lowercase PostgreSQL role name ([a-z_][a-z0-9_]*)",
        )
    if role is not None and role.startswith("pg_"):
        raise InvalidInput("grant.template", f"{where}.{broker}.role: pg_* roles are reserved")
    limit = options.get("connection_limit")
    ttl = options.get("ttl")
    return GrantTemplate(
        broker=broker,
        role=role,
        connection_limit=None
        if limit is None
        else _int(limit, f"{where}.{broker}.connection_limit", 1, MAX_CONNECTION_LIMIT),
        ttl=None if ttl is None else _int(ttl, f"{where}.{broker}.ttl", 1, MAX_KEY_TTL),
    )


@dataclass(frozen=True, slots=True)
class GrantSecret:
    """Secret material, handed to the caller once: never stored, logged or audited."""

    values: Mapping[str, str] = field(repr=False)

    def __repr__(self) -> str:
        return f"GrantSecret(keys={sorted(self.values)})"


class GrantBroker(Protocol):
    """Mints and revokes one kind of downstream credential."""

    #: the broker's name: the key of its template in a playbook's ``grants`` section
    name: str
    #: a legacy credential (not per task, cannot be revoked): flagged by posture
    legacy: bool

    def new_handle(self, task: TaskRecord) -> str:
        """A fresh name for the credential (a role name, a key id), never a secret.
        The lease is stored under it before :meth:`issue` runs."""
        ...

    def issue(
        self, handle: str, task: TaskRecord, template: GrantTemplate, expires_at: float
    ) -> GrantSecret:
        """Create the credential ``handle`` valid until ``expires_at``; all or nothing.
        Raises a :class:`~zerolane.errors.ZerolaneError` whose message holds no secret."""
        ...

    def revoke(self, handle: str) -> None:
        """Make ``handle`` unusable, and be done when it already is (idempotent).
        Raises a :class:`~zerolane.errors.ZerolaneError` when it could not."""
        ...
