"""RFC 8693: the ``act`` chain and the token-exchange request, as the protocol half."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from zerolane.errors import InvalidInput
from zerolane.tokens.rfc8693 import (
    ACCESS_TOKEN_TYPE,
    GRANT_TYPE,
    ID_TOKEN_TYPE,
    JWT_TYPE,
    MAX_ACT_DEPTH,
    Actor,
    ExchangeRequest,
    act_claim,
    delegated_chain,
    exchange_form,
    oauth_error,
    parse_act,
    parse_exchange_form,
)

A = "spiffe://example.org/agents/a"
B = "spiffe://example.org/agents/b"
C = "spiffe://example.org/agents/c"
BASE = {
    "grant_type": GRANT_TYPE,
    "subject_token": "parent.token.sig",
    "subject_token_type": ACCESS_TOKEN_TYPE,
    "actor_token": "delegate.svid.sig",
    "actor_token_type": JWT_TYPE,
}


def form(pairs: list[tuple[str, str]] | None = None, **changes: str | None) -> bytes:
    params = {**BASE, **changes}
    items = [(k, v) for k, v in params.items() if v is not None] + (pairs or [])
    return urlencode(items).encode()


# the act chain ---------------------------------------------------------------------------


def test_the_current_actor_is_outermost_and_earlier_ones_nest() -> None:
    claim = act_claim([Actor(C), Actor(B), Actor(A)])
    assert claim == {"sub": C, "act": {"sub": B, "act": {"sub": A}}}
    assert parse_act(claim) == (Actor(C), Actor(B), Actor(A))


def test_a_person_in_the_chain_keeps_the_issuer_that_proved_them() -> None:
    claim = act_claim([Actor(A), Actor("alice", "https://idp.example.org")])
    assert claim == {"sub": A, "act": {"sub": "alice", "iss": "https://idp.example.org"}}
    assert parse_act(claim)[1] == Actor("alice", "https://idp.example.org")


def test_no_actor_is_no_claim() -> None:
    assert act_claim([]) is None
    assert parse_act(None) == ()


def test_delegating_puts_the_delegate_in_front_of_the_parents_chain() -> None:
    # a root task's token has no act: its holder starts the chain
    assert delegated_chain(A, None, B) == (Actor(B), Actor(A))
    child_act = act_claim(delegated_chain(A, None, B))
    # the child's token has sub B and that act; delegating again nests it
    assert delegated_chain(B, child_act, C) == (Actor(C), Actor(B), Actor(A))


@pytest.mark.parametrize(
    "act",
    [
        "agent",
        {"act": {"sub": A}},
        {"sub": A, "act": {"sub": 1}},
        {"sub": ""},
        {"sub": A, "iss": 5},
        [{"sub": A}],
    ],
)
def test_a_malformed_chain_is_refused(act: object) -> None:
    with pytest.raises(ValueError, match="act"):
        parse_act(act)


def test_the_chain_is_bounded() -> None:
    deep = act_claim([Actor(f"{A}{i}") for i in range(MAX_ACT_DEPTH)])
    assert len(parse_act(deep)) == MAX_ACT_DEPTH
    with pytest.raises(ValueError, match="deeper"):
        parse_act({"sub": "x", "act": deep})
    with pytest.raises(InvalidInput):
        act_claim([Actor(A)] * (MAX_ACT_DEPTH + 1))


# the request -----------------------------------------------------------------------------


def test_a_delegation_request_is_read() -> None:
    details: list[object] = [{"type": "zerolane_task", "actions": ["read"]}]
    parsed = parse_exchange_form(
        form(
            [("audience", "gw-a"), ("audience", "gw-b"), ("audience", "gw-a")],
            authorization_details=json.dumps(details),
            ttl="60",
            max_calls="3",
            intent="Read the Q3 report",
        )
    )
    assert parsed == ExchangeRequest(
        subject_token="parent.token.sig",
        subject_token_type=ACCESS_TOKEN_TYPE,
        actor_token="delegate.svid.sig",
        actor_token_type=JWT_TYPE,
        authorization_details=details,
        audience=("gw-a", "gw-b"),
        ttl=60,
        max_calls=3,
        intent="Read the Q3 report",
    )
    assert not parsed.for_user
    assert parse_exchange_form(form(subject_token_type=ID_TOKEN_TYPE)).for_user


def test_a_client_writes_what_the_server_reads() -> None:
    request = ExchangeRequest(
        subject_token="s",
        subject_token_type=ID_TOKEN_TYPE,
        actor_token="a",
        actor_token_type=JWT_TYPE,
        authorization_details=[{"type": "zerolane_task"}],
        audience=("gw",),
        ttl=5,
        max_calls=2,
        intent="i",
        playbook="reports",
    )
    assert parse_exchange_form(urlencode(exchange_form(request)).encode()) == request


def test_empty_values_count_as_omitted() -> None:
    parsed = parse_exchange_form(form(ttl="", intent=""))
    assert (parsed.ttl, parsed.intent) == (None, None)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (form(grant_type="client_credentials"), "exchange.grant_type"),
        (form(grant_type=None), "exchange.grant_type"),
        (form(subject_token=None), "exchange.missing"),
        (form(actor_token=None), "exchange.missing"),
        (form(actor_token_type=None), "exchange.missing"),
        (form(subject_token_type=JWT_TYPE), "exchange.token_type"),
        (form(actor_token_type=ACCESS_TOKEN_TYPE), "exchange.token_type"),
        (form(requested_token_type=ID_TOKEN_TYPE), "exchange.token_type"),
        (form([("subject_token", "again")]), "exchange.duplicate"),
        (form([("ttl", "5"), ("ttl", "6")]), "exchange.duplicate"),
        (form(max_call="3"), "exchange.unknown_parameter"),
        (form(scope="read"), "exchange.scope"),
        (form(resource="https://gw.example.org"), "exchange.resource"),
        (form(ttl="-5"), "exchange.ttl"),
        (form(ttl="0"), "exchange.ttl"),
        (form(ttl="1.5"), "exchange.ttl"),
        (form(max_calls="lots"), "exchange.max_calls"),
        (form(max_calls="\u0663"), "exchange.max_calls"),  # an Arabic-Indic digit
        # regression: more digits than int() converts raised ValueError (a 500)
        (form(ttl="1" * 5000), "exchange.ttl"),
        (form(max_calls="0" * 4400 + "5"), "exchange.max_calls"),
        (form(intent="x" * 2001), "exchange.intent"),
        (form(subject_token="x" * (32 * 1024 + 1)), "exchange.token_size"),
        (form([("audience", f"gw{i}") for i in range(9)]), "exchange.audience"),
        (form(authorization_details="{not json"), "authorization_details.json"),
        (form(authorization_details='{"type": "zerolane_task"}'), "authorization_details.field"),
        # regression: nesting the JSON parser takes but the audit log could not record
        # (the refusal, of a stolen token say, went unaudited as a 503)
        (form(authorization_details="[" * 700 + "]" * 700), "authorization_details.field"),
        (
            form(
                authorization_details='[{"type":"zerolane_task","actions":'
                + "[" * 40
                + "]" * 40
                + "}]"
            ),
            "authorization_details.field",
        ),
        (b"\xff\xfe", "exchange.malformed"),
        (b"a=1&&&=", "exchange.malformed"),
    ],
)
def test_a_malformed_request_is_refused_with_its_reason(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_exchange_form(body)
    assert refused.value.reason == reason


@pytest.mark.parametrize(
    ("reason", "error"),
    [
        ("exchange.grant_type", "unsupported_grant_type"),
        ("exchange.missing", "invalid_request"),
        ("dpop.key_mismatch", "invalid_dpop_proof"),
        ("authorization_details.json", "invalid_authorization_details"),
        ("scope.audience", "invalid_target"),
        ("exchange.resource", "invalid_target"),
        ("scope.action", "invalid_scope"),
        ("scope.sensitivity", "invalid_scope"),
        ("delegation.ttl", "invalid_scope"),
        ("delegation.budget", "invalid_scope"),
        ("delegation.depth", "invalid_request"),
        ("delegation.not_delegable", "invalid_request"),
        ("token.expired", "invalid_request"),
        ("id_token.audience", "invalid_request"),
        ("grant.no_permit", "invalid_request"),
        ("audit.write", "temporarily_unavailable"),
    ],
)
def test_each_reason_maps_to_its_oauth_error_code(reason: str, error: str) -> None:
    assert oauth_error(reason) == error
