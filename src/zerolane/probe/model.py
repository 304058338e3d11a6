"""What a probe run is made of: outcomes, the exchanges it keeps as evidence, a
scenario's result and the scenario itself."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zerolane.probe.context import ProbeContext


class Outcome(enum.StrEnum):
    """How one scenario ended.

    ``pass``: the twin went through and the attack was refused. ``fail``: the attack
    was accepted. ``inconclusive``: the twin itself did not go through (or the target
    could not be reached), so nothing is known about the attack. ``not_applicable``: the
    credentials or the target's profile do not offer what the scenario needs (never
    counted as a pass).
    """

    PASS = "pass"  # noqa: S105  (an outcome, not a password)
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    NOT_APPLICABLE = "not_applicable"


class Need(enum.StrEnum):
    """What a scenario needs from the credentials or the target's profile."""

    #: a token bound to a key the probe holds (DPoP)
    PROOF_KEY = "proof_key"
    #: ending a credential early: complete and revoke its task
    LIFECYCLE = "lifecycle"
    #: two independent credentials (two tasks, two client-credentials grants)
    SECOND_CREDENTIAL = "second_credential"
    #: a token that expires within the probe's patience (a short task window)
    SHORT_LIVED = "short_lived"
    #: the issuer's signing key, to sign claims the issuer would never issue (a home)
    ISSUER_KEY = "issuer_key"
    #: a token from the same issuer for another audience
    OTHER_AUDIENCE = "other_audience"
    #: delegation (RFC 8693 token exchange with ``act``)
    DELEGATION = "delegation"
    #: the issuer's public keys (JWKS), for algorithm-confusion forgeries
    ISSUER_JWKS = "issuer_jwks"
    #: a request the credential may not make (another method or path of the target)
    FORBIDDEN_REQUEST = "forbidden_request"
    #: an MCP endpoint with a tool the credential may call and one it may not
    MCP = "mcp"
    #: an allowed route whose upstream echoes the headers that reached it
    ECHO = "echo"


@dataclass(frozen=True)
class Exchange:
    """One request the probe sent and what came back, as kept in the evidence: headers
    and bodies summarized, every credential masked."""

    role: str  # "twin", "attack" or "setup"
    method: str
    url: str
    request_headers: dict[str, str]
    request_body_bytes: int
    status: int | None  # None when no answer came (refused connection, timeout, reset)
    response_headers: dict[str, str]
    response_excerpt: str
    elapsed_ms: float
    error: str | None = None
    #: the response body as received (at most ``wire.BODY_KEPT`` bytes), for the
    #: scenario to read; never part of the report
    body: bytes = field(default=b"", repr=False, compare=False)

    @property
    def accepted(self) -> bool:
        """The target answered with success (2xx or 3xx): it did what was asked."""
        return self.status is not None and self.status < 400

    def to_json(self) -> dict[str, object]:
        return {
            "role": self.role,
            "request": {
                "method": self.method,
                "url": self.url,
                "headers": self.request_headers,
                "body_bytes": self.request_body_bytes,
            },
            "response": {
                "status": self.status,
                "headers": self.response_headers,
                "excerpt": self.response_excerpt,
                "error": self.error,
            },
            "elapsed_ms": round(self.elapsed_ms, 1),
        }


@dataclass(frozen=True)
class Result:
    """One scenario's outcome, why, and the exchanges that show it."""

    scenario: str
    outcome: Outcome
    reason: str
    evidence: tuple[Exchange, ...] = ()


@dataclass(frozen=True)
class Scenario:
    """One attack: an id (``proof.replayed``), a title a person reads, what it tries,
    what it needs, and how to run it.

    ``run`` sends the twin and the attack through the context and returns a result; it
    may assume every need is met (the runner checks them first and reports
    ``not_applicable`` otherwise).
    """

    id: str
    title: str
    attack: str  # what the adversary does, one sentence
    expect: str  # what a sound target does, one sentence
    surface: str  # "http", "mcp", "token" (the token endpoint) or "control-plane"
    run: Callable[[ProbeContext], Result]
    needs: frozenset[Need] = field(default_factory=frozenset)
