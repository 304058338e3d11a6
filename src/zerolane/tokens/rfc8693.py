"""OAuth 2.0 Token Exchange (RFC 8693): the request, its errors and the ``act`` chain.

zerolane's token endpoint (``POST /v1/token``) speaks the exchange for two things:
delegating part of a task to another workload (the subject token is the parent task
token) and opening a task for a verified person (the subject token is an OIDC ID
token). This module is the protocol half, with no knowledge of tasks:

- :func:`parse_exchange_form` reads an ``application/x-www-form-urlencoded`` body
  (RFC 8693 section 2.1) into an :class:`ExchangeRequest`, refusing what it cannot
  take with a stable reason (``exchange.*``);
- :func:`oauth_error` turns a reason into the RFC 6749 section 5.2 ``error`` code;
- :func:`act_claim` / :func:`parse_act` build and read the ``act`` claim (section 4.1):
  the **current actor outermost**, each earlier actor nested in the ``act`` of the
  one after it.

In zerolane the outermost actor of a task token is always the workload that holds it
(its ``sub``, bound by ``cnf.jkt``); the nested ones are the workloads that delegated
to it, back to the root task's owner, and, for a task opened for a person, that person
innermost (with the ``iss`` of the ID token that proved them). See ``docs/delegation.md``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from zerolane.errors import InvalidInput

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"  # noqa: S105
SUBJECT_TOKEN_TYPES = frozenset({ACCESS_TOKEN_TYPE, ID_TOKEN_TYPE})
FORM_TYPE = "application/x-www-form-urlencoded"

#: actors in one chain: the deepest delegation (8) plus the root owner and a person
MAX_ACT_DEPTH = 16
MAX_TOKEN_CHARS = 32 * 1024
MAX_AUDIENCES = 8
MAX_AUDIENCE_CHARS = 2048
MAX_DETAILS_CHARS = 64 * 1024
#: arrays and objects nested in ``authorization_details`` (ours nest 3: list, entry,
#: list); deeper JSON is refused so a refusal's audit event can always record it
MAX_DETAILS_DEPTH = 8
MAX_INTENT = 2000
MAX_PLAYBOOK = 64
MAX_NUMBER = 10**9

#: parameters that may be given once; ``audience`` may repeat (section 2.1)
_SINGLE = frozenset(
    {
        "grant_type",
        "subject_token",
        "subject_token_type",
        "actor_token",
        "actor_token_type",
        "requested_token_type",
        "authorization_details",
        "ttl",
        "max_calls",
        "intent",
        "playbook",
        "client_id",
    }
)
_KNOWN = _SINGLE | {"audience"}
#: RFC 8693 parameters zerolane does not take: refused rather than ignored, since
#: ignoring a narrowing the caller asked for would grant more than it wanted
_REFUSED = {
    "scope": ("exchange.scope", "use authorization_details (RFC 9396), not scope"),
    "resource": ("exchange.resource", "use audience (the enforcement points), not resource"),
}


@dataclass(frozen=True, slots=True)
class Actor:
    """One party of an ``act`` chain: its ``sub`` and, for a person, the ``iss`` that
    vouched for it (a workload's SPIFFE ID needs none)."""

    sub: str
    iss: str | None = None

    def claim(self) -> dict[str, Any]:
        return {"sub": self.sub} if self.iss is None else {"sub": self.sub, "iss": self.iss}


def act_claim(chain: Sequence[Actor]) -> dict[str, Any] | None:
    """The ``act`` claim of ``chain`` (current actor first), or None for no actor."""
    if len(chain) > MAX_ACT_DEPTH:
        raise InvalidInput("act.depth", f"an act chain holds at most {MAX_ACT_DEPTH} actors")
    claim: dict[str, Any] | None = None
    for actor in reversed(chain):
        level = actor.claim()
        if claim is not None:
            level["act"] = claim
        claim = level
    return claim


def parse_act(act: object) -> tuple[Actor, ...]:
    """The actors of an ``act`` claim, current first; ``()`` for None.

    Raises ``ValueError`` unless every level is an object with a non-empty string
    ``sub`` (and a string ``iss`` when present), at most :data:`MAX_ACT_DEPTH` deep.
    """
    chain: list[Actor] = []
    level = act
    while level is not None:
        if len(chain) >= MAX_ACT_DEPTH:
            raise ValueError(f"act is nested deeper than {MAX_ACT_DEPTH}")
        if not isinstance(level, dict):
            raise ValueError("each act level is an object")
        sub, iss = level.get("sub"), level.get("iss")
        if not isinstance(sub, str) or not sub:
            raise ValueError("each act level has a string 'sub'")
        if iss is not None and (not isinstance(iss, str) or not iss):
            raise ValueError("an act level's 'iss' is a string")
        chain.append(Actor(sub, iss))
        level = level.get("act")
    return tuple(chain)


def delegated_chain(parent_sub: str, parent_act: object, delegate: str) -> tuple[Actor, ...]:
    """The chain of a task delegated to ``delegate`` by the holder of a parent token
    (``parent_sub``, with the parent's ``act``): the delegate, then the parent's chain
    (or the parent's holder alone, for a root task)."""
    parent = parse_act(parent_act) or (Actor(parent_sub),)
    return (Actor(delegate), *parent)


@dataclass(frozen=True, slots=True)
class ExchangeRequest:
    """A token-exchange request, checked for shape (not yet for meaning)."""

    subject_token: str
    subject_token_type: str
    actor_token: str
    actor_token_type: str
    authorization_details: list[object] | None = None
    audience: tuple[str, ...] = ()
    ttl: int | None = None
    max_calls: int | None = None
    intent: str | None = None
    playbook: str | None = None

    @property
    def for_user(self) -> bool:
        """The subject is a person (an OIDC ID token), not a parent task."""
        return self.subject_token_type == ID_TOKEN_TYPE


def _bad(reason: str, message: str) -> InvalidInput:
    return InvalidInput(reason, message)


def _number(params: Mapping[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    digits = raw.isascii() and raw.isdigit() and len(raw) <= len(str(MAX_NUMBER))
    if not digits or not 0 < int(raw) <= MAX_NUMBER:  # int() of 4301+ digits raises
        raise _bad(f"exchange.{name}", f"{name} is a positive whole number")
    return int(raw)


def _text(params: Mapping[str, str], name: str, limit: int) -> str | None:
    value = params.get(name)
    if value is not None and len(value) > limit:
        raise _bad(f"exchange.{name}", f"{name} is at most {limit} characters")
    return value


def _details(raw: str | None) -> list[object] | None:
    if raw is None:
        return None
    if len(raw) > MAX_DETAILS_CHARS:
        raise _bad("authorization_details.field", "authorization_details is too large")
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as err:
        raise _bad(
            "authorization_details.json", "authorization_details is not a JSON array"
        ) from err
    if not isinstance(value, list):
        raise _bad("authorization_details.field", "authorization_details is a JSON array")
    if _depth(value) > MAX_DETAILS_DEPTH:
        raise _bad(
            "authorization_details.field",
            f"authorization_details nests deeper than {MAX_DETAILS_DEPTH} levels",
        )
    return value


def _depth(value: object) -> int:
    """How deep arrays and objects nest in ``value`` (iteratively: no recursion)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, level + 1) for child in children)
    return deepest


def _form(body: bytes) -> tuple[dict[str, str], list[str]]:
    """Single-valued parameters and the audiences; empty values count as omitted."""
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
    except (UnicodeDecodeError, ValueError) as err:
        raise _bad("exchange.malformed", f"the body is not {FORM_TYPE}") from err
    params: dict[str, str] = {}
    audiences: list[str] = []
    for name, value in pairs:
        if name in _REFUSED:
            raise _bad(*_REFUSED[name])
        if name not in _KNOWN:
            raise _bad("exchange.unknown_parameter", f"unknown parameter {name[:64]!r}")
        if not value:
            continue  # RFC 6749 section 3.2: sent without a value = omitted
        if name == "audience":
            audiences.append(value)
        elif name in params:
            raise _bad("exchange.duplicate", f"{name} is given more than once")
        else:
            params[name] = value
    return params, audiences


def parse_exchange_form(body: bytes) -> ExchangeRequest:
    """Read a token-exchange request body (RFC 8693 section 2.1).

    Refused with ``exchange.grant_type`` (not a token exchange), ``exchange.unknown_parameter``,
    ``exchange.duplicate``, ``exchange.missing``, ``exchange.token_type``,
    ``exchange.token_size``, ``exchange.audience``, ``exchange.<name>`` for a bad number
    or text, ``exchange.scope`` / ``exchange.resource`` (not supported) and
    ``authorization_details.json`` / ``.field``.
    """
    params, audiences = _form(body)
    if params.get("grant_type") != GRANT_TYPE:
        raise _bad("exchange.grant_type", f"grant_type must be {GRANT_TYPE}")
    missing = [
        name
        for name in ("subject_token", "subject_token_type", "actor_token", "actor_token_type")
        if name not in params
    ]
    if missing:
        raise _bad("exchange.missing", f"missing parameter(s): {', '.join(missing)}")
    subject_type, actor_type = params["subject_token_type"], params["actor_token_type"]
    if subject_type not in SUBJECT_TOKEN_TYPES:
        raise _bad(
            "exchange.token_type",
            f"subject_token_type must be {ACCESS_TOKEN_TYPE} (a task token) or "
            f"{ID_TOKEN_TYPE} (a person's ID token)",
        )
    if actor_type != JWT_TYPE:
        raise _bad("exchange.token_type", f"actor_token_type must be {JWT_TYPE} (a JWT-SVID)")
    requested = params.get("requested_token_type")
    if requested is not None and requested != ACCESS_TOKEN_TYPE:
        raise _bad("exchange.token_type", f"requested_token_type can only be {ACCESS_TOKEN_TYPE}")
    for name in ("subject_token", "actor_token"):
        if len(params[name]) > MAX_TOKEN_CHARS:
            raise _bad("exchange.token_size", f"{name} is larger than {MAX_TOKEN_CHARS} bytes")
    if len(audiences) > MAX_AUDIENCES or any(len(a) > MAX_AUDIENCE_CHARS for a in audiences):
        raise _bad(
            "exchange.audience",
            f"at most {MAX_AUDIENCES} audiences of {MAX_AUDIENCE_CHARS} characters",
        )
    return ExchangeRequest(
        subject_token=params["subject_token"],
        subject_token_type=subject_type,
        actor_token=params["actor_token"],
        actor_token_type=actor_type,
        authorization_details=_details(params.get("authorization_details")),
        audience=tuple(dict.fromkeys(audiences)),
        ttl=_number(params, "ttl"),
        max_calls=_number(params, "max_calls"),
        intent=_text(params, "intent", MAX_INTENT),
        playbook=_text(params, "playbook", MAX_PLAYBOOK),
    )


def exchange_form(request: ExchangeRequest) -> list[tuple[str, str]]:
    """The form parameters of ``request`` (what a client sends; the inverse of parsing)."""
    pairs = [
        ("grant_type", GRANT_TYPE),
        ("subject_token", request.subject_token),
        ("subject_token_type", request.subject_token_type),
        ("actor_token", request.actor_token),
        ("actor_token_type", request.actor_token_type),
    ]
    if request.authorization_details is not None:
        pairs.append(("authorization_details", json.dumps(request.authorization_details)))
    pairs.extend(("audience", audience) for audience in request.audience)
    optional = {
        "ttl": request.ttl,
        "max_calls": request.max_calls,
        "intent": request.intent,
        "playbook": request.playbook,
    }
    pairs.extend((name, str(value)) for name, value in optional.items() if value is not None)
    return pairs


#: reasons whose RFC 6749 / 8693 / 9396 / 9449 error code is not ``invalid_request``
_TARGET = frozenset({"scope.audience", "exchange.resource"})
_SCOPE = frozenset({"delegation.ttl", "delegation.budget", "exchange.scope"})


def oauth_error(reason: str) -> str:
    """The ``error`` code of a token-endpoint error response for our ``reason``.

    ``unsupported_grant_type`` (RFC 6749) for another grant; ``invalid_dpop_proof``
    (RFC 9449 section 5) for a refused proof; ``invalid_authorization_details``
    (RFC 9396 section 5) for malformed details; ``invalid_target`` (RFC 8693 section
    2.2.2) for an audience the subject token does not cover; ``invalid_scope`` for
    a scope, window or budget wider than allowed; ``invalid_request`` for the rest,
    which RFC 8693 uses for invalid or unacceptable subject and actor tokens.
    """
    if reason == "exchange.grant_type":
        return "unsupported_grant_type"
    if reason.startswith("dpop."):
        return "invalid_dpop_proof"
    if reason.startswith("authorization_details."):
        return "invalid_authorization_details"
    if reason in _TARGET:
        return "invalid_target"
    if reason in _SCOPE or reason.startswith("scope."):
        return "invalid_scope"
    if reason.startswith(("store.", "audit.")):
        return "temporarily_unavailable"
    return "invalid_request"
