"""Likely mistakes in a valid playbook: said as warnings when it is applied.

A playbook can be valid and still not do what its author meant: an action written as
a bare HTTP method (``GET``) never matches the ``http:GET`` actions the gateways
decide; an opener pattern in a trust domain this home neither is nor federates with
can never match a workload that may attest here; a selector whose type no attestor of
this home proves (or that names an issuer it does not trust) can never be shown.
None of these is refused (a gateway may map its own actions; a federation may come
later): they are warned about, each in one line naming the field.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from zerolane.tasks.playbooks import Playbook, parse_spiffe_pattern

HTTP_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
#: the prefixes of the actions zerolane's enforcement points decide
ACTION_PREFIXES = ("http", "mcp")
#: selector types attestors prove whatever the configuration
BUILT_IN_SELECTORS = frozenset({"join_token", "x509_svid", "jwt_issuer"})


@dataclass(frozen=True, slots=True)
class AttestationFacts:
    """What this home can attest: its trust domain, the ones it federates with, its
    JWT issuers' names and the selector types their claims map to."""

    trust_domain: str
    federated: Collection[str] = ()
    issuers: Collection[str] = ()
    selector_types: Collection[str] = ()


def playbook_warnings(playbook: Playbook, facts: AttestationFacts) -> list[str]:
    """One line per likely mistake in ``playbook`` (none: an empty list)."""
    warnings = [_action_warning(action) for action in playbook.actions]
    domains = {facts.trust_domain, *facts.federated}
    for pattern in playbook.openers.spiffe_ids:
        trust_domain, _ = parse_spiffe_pattern(pattern)
        if trust_domain not in domains:
            warnings.append(
                f"openers.spiffe_ids: {pattern!r} is outside this home's trust domain "
                f"{facts.trust_domain!r} and no federated one: it matches no workload here"
            )
    types = BUILT_IN_SELECTORS | set(facts.selector_types)
    for selector in playbook.openers.selectors:
        kind, _, value = selector.partition(":")
        if kind not in types:
            warnings.append(
                f"openers.selectors: {selector!r}: no attestor of this home proves "
                f"{kind!r} selectors (configured: {', '.join(sorted(types))})"
            )
        elif kind == "jwt_issuer" and value not in facts.issuers:
            warnings.append(
                f"openers.selectors: {selector!r} names an issuer this home does not "
                f"trust (configured: {', '.join(sorted(facts.issuers)) or 'none'})"
            )
    return [warning for warning in warnings if warning]


def _action_warning(action: str) -> str:
    prefix, colon, rest = action.partition(":")
    if not colon and action.upper() in HTTP_METHODS:
        return (
            f"actions: {action!r} is a bare HTTP method: the HTTP gateway decides "
            f"'http:{action.upper()}' (did you mean that?)"
        )
    if colon and prefix.lower() in ACTION_PREFIXES and prefix not in ACTION_PREFIXES:
        return f"actions: {action!r}: prefixes are lowercase ({prefix.lower()}:{rest})"
    if colon and prefix == "http" and rest.upper() in HTTP_METHODS and rest != rest.upper():
        return f"actions: {action!r}: HTTP methods are upper case (http:{rest.upper()})"
    return ""
