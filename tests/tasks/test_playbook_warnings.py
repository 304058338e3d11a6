"""Warnings for likely mistakes in a valid playbook, each with its quiet twin."""

from __future__ import annotations

from typing import Any

import pytest

from tests.tasks.test_playbooks import SOURCE, doc
from zerolane.tasks.playbook_warnings import AttestationFacts, playbook_warnings
from zerolane.tasks.playbooks import parse_playbook

FACTS = AttestationFacts(
    trust_domain="example.org",
    federated=["partner.example"],
    issuers=["k8s"],
    selector_types=["k8s-sa", "k8s-ns"],
)


def _warnings(**changes: Any) -> list[str]:
    return playbook_warnings(parse_playbook(doc(**changes), SOURCE), FACTS)


def test_a_playbook_that_looks_right_gets_no_warning() -> None:
    assert _warnings() == []
    assert (
        _warnings(
            actions=["read", "http:GET", "mcp:read_report"],
            openers={
                "spiffe_ids": ["spiffe://example.org/a/*", "spiffe://partner.example/b"],
                "selectors": ["k8s-sa:reports", "jwt_issuer:k8s", "join_token:abc"],
            },
        )
        == []
    )


@pytest.mark.parametrize(
    ("actions", "hint"),
    [
        (["GET"], "'http:GET'"),
        (["delete"], "'http:DELETE'"),
        (["HTTP:GET"], "http:GET"),
        (["http:get"], "http:GET"),
        (["MCP:read"], "mcp:read"),
    ],
)
def test_an_action_the_gateways_never_decide_is_warned(actions: list[str], hint: str) -> None:
    [warning] = _warnings(actions=actions)
    assert warning.startswith("actions: ")
    assert hint in warning


def test_an_opener_outside_the_trust_domain_is_warned() -> None:
    openers = {"spiffe_ids": ["spiffe://other.example/agents/*"]}
    [warning] = _warnings(openers=openers)
    assert warning.startswith("openers.spiffe_ids: 'spiffe://other.example/agents/*'")


@pytest.mark.parametrize(
    ("selector", "says"),
    [("gcp-sa:reports", "no attestor"), ("jwt_issuer:github", "does not trust")],
)
def test_a_selector_no_attestor_proves_is_warned(selector: str, says: str) -> None:
    openers = {"spiffe_ids": ["spiffe://example.org/a"], "selectors": [selector]}
    [warning] = _warnings(openers=openers)
    assert warning.startswith(f"openers.selectors: {selector!r}")
    assert says in warning
