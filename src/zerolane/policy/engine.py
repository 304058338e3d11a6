"""The policy decision point's port: what a caller asks and what it gets back.

The core (tasks, gateway, server) depends on :class:`PolicyEngine` only; the Cedar
adapter (:mod:`zerolane.policy.cedar`) is one implementation of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from zerolane.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class PolicyRequest:
    """One question for the PDP: may ``principal`` do ``action`` on ``resource``?"""

    principal: str  # a SPIFFE ID -> entity Zerolane::Workload::"<id>"
    action: str  # "request" | "open_task" -> Zerolane::Action::"<action>"
    resource_type: str  # "Resource" | "Playbook" -> Zerolane::<type>::"<resource>"
    resource: str
    context: Mapping[str, object]


@dataclass(frozen=True, slots=True)
class PolicyResult:
    """The answer. ``allowed`` is never true when ``errors`` is non-empty."""

    allowed: bool
    policy_ids: tuple[str, ...]  # @id annotations of the determining policies (sorted)
    errors: tuple[str, ...]  # evaluation errors; any error means allowed=False
    #: denied only by policies annotated ``@approval("required")`` (``policy_ids``),
    #: and allowed without them: a human may approve this exact request
    approval: bool = False
    #: denied, and among ``policy_ids`` is a ``forbid`` annotated ``@shadow("never")``
    #: (a safety rule): no shadow mode relaxes this deny
    shadow_never: bool = False
    #: reason ids that say why it erred, beyond ``policy.error`` (e.g.
    #: ``policy.schema_outdated``: the home's schema predates what requests carry)
    reasons: tuple[str, ...] = ()


class PolicyEngine(Protocol):
    """A policy decision point over an immutable, versioned policy set."""

    @property
    def version(self) -> str:
        """sha256 hex of the loaded set (schema + policies)."""
        ...

    def decide(self, request: PolicyRequest) -> PolicyResult:
        """Decide one request; fails closed (errors deny, never raise into an allow)."""
        ...


class PolicyLoadError(InvalidInput):
    """A policy directory was refused; ``errors`` holds one line per problem found."""

    def __init__(self, reason: str, errors: str | list[str] | tuple[str, ...]) -> None:
        self.errors = (errors,) if isinstance(errors, str) else tuple(errors)
        super().__init__(reason, "\n".join(self.errors))
