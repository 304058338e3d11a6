"""The declared fields of every audit event kind: masking by them, kind by kind.

For every kind: a declared secret is masked, declared clear members are kept whatever
their names (the legitimate twins of secrets), a JWT or PEM private key put in a clear
member is still masked (the backstop), and a member the kind does not declare is masked
when named like a secret (fail-safe). Every kind the code records is declared (read
from the source), and the events the real code paths record carry declared members only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.audit.kinds_in_source import recorded_kinds
from tests.audit.test_masking import JWT, PEM, is_masked
from tests.tasks.conftest import (
    ADMIN,
    AGENT,
    PEER,
    PLAYBOOK_DOC,
    Agent,
    World,
    build_world,
    details,
)
from zerolane.audit import masking
from zerolane.audit.events import SYSTEM, Event
from zerolane.audit.masking import mask_details, mask_value
from zerolane.audit.schema import DETAILS, EVENT_FIELDS, EventFields
from zerolane.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from zerolane.server.app import create_app
from zerolane.server.deployment import init_home
from zerolane.tasks.playbooks import parse_playbook
from zerolane.tokens.rfc8693 import (
    ACCESS_TOKEN_TYPE,
    GRANT_TYPE,
    ID_TOKEN_TYPE,
    JWT_TYPE,
    ExchangeRequest,
)
from zerolane.types import Outcome, TaskState, WorkloadStatus

KINDS = sorted(EVENT_FIELDS)
TOKEN_URL = "https://cp.example.org/v1/token"


# ---- the table -----------------------------------------------------------------------------


def test_every_kind_the_code_records_is_declared_and_every_declared_kind_is_recorded() -> None:
    found = recorded_kinds()
    assert found.unresolved == [], "call sites whose kind the scan cannot read"
    assert found.call_sites >= 30  # the scan sees the call sites (it is not vacuous)
    undeclared = {kind: where for kind, where in found.kinds.items() if kind not in EVENT_FIELDS}
    assert undeclared == {}, "declare these kinds in zerolane.audit.schema.EVENT_FIELDS"
    for pattern, where in found.patterns.items():
        assert any(re.fullmatch(pattern, kind) for kind in KINDS), (pattern, where)
    stale = [
        kind
        for kind in KINDS
        if kind not in found.kinds and not any(re.fullmatch(p, kind) for p in found.patterns)
    ]
    assert stale == [], "declared kinds no code records"


def test_the_kinds_recorded_from_a_state_are_declared_for_each_state() -> None:
    assert {f"workload.{s.value}" for s in WorkloadStatus} <= set(KINDS)
    assert {f"task.{s.value}" for s in TaskState if s.ended} <= set(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_every_declared_path_is_under_details_and_in_one_set(kind: str) -> None:
    fields = EVENT_FIELDS[kind]
    for path in fields.paths():
        assert path.startswith(f"{DETAILS}."), path
        assert all(path.split(".")), path
    assert not fields.clear & fields.secret
    assert not fields.clear & fields.free
    assert not fields.free & fields.secret


# ---- masking, kind by kind -----------------------------------------------------------------


def _put(tree: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")[1:]
    for step in parents:
        tree = tree.setdefault(step, {})
    if isinstance(tree.get(last), dict):
        return  # a member that holds declared members below it keeps them
    tree[last] = value


def _sample(fields: EventFields, value: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Details holding ``value`` in every declared member, and what masking must make
    of them: clear kept, secret masked, free masked by names."""
    given: dict[str, Any] = {}
    expected: dict[str, Any] = {}
    kept = mask_value(value) if masking._looks_secret(value) else value  # the backstop
    for path in sorted(fields.paths(), key=lambda p: -p.count(".")):  # deepest first
        if path in fields.secret:
            _put(given, path, value)
            _put(expected, path, mask_value(value))
        elif path in fields.free:
            _put(given, path, {"note": value, "password": "p"})
            _put(expected, path, {"note": kept, "password": mask_value("p")})
        else:
            _put(given, path, value)
            _put(expected, path, kept)
    return given, expected


@pytest.mark.parametrize("kind", KINDS)
def test_declared_members_are_masked_by_their_declaration(kind: str) -> None:
    fields = EVENT_FIELDS[kind]
    given, expected = _sample(fields, "plain value")
    assert mask_details(kind, given) == expected
    for path in fields.secret:  # each secret masked, whatever the value looks like
        _, *steps = path.split(".")
        masked: Any = mask_details(kind, given)
        for step in steps:
            masked = masked[step]
        assert masked == mask_value("plain value"), path


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("secret", [JWT, f"Bearer {JWT}", PEM], ids=["jwt", "bearer", "pem"])
def test_a_token_or_key_in_any_declared_member_is_masked_by_the_backstop(
    kind: str, secret: str
) -> None:
    given, expected = _sample(EVENT_FIELDS[kind], secret)
    masked = mask_details(kind, given)
    assert masked == expected
    assert secret not in json.dumps(masked)
    assert "PRIVATE KEY" not in json.dumps(masked)


@pytest.mark.parametrize("kind", KINDS)
def test_a_member_the_kind_does_not_declare_is_masked_when_named_like_a_secret(kind: str) -> None:
    given = {"undeclared_password": "p", "client_secret": {"v": "s"}, "undeclared_note": "n"}
    assert mask_details(kind, given) == {
        "undeclared_password": mask_value("p"),
        "client_secret": {"v": mask_value("s")},
        "undeclared_note": "n",
    }


@pytest.mark.parametrize(
    ("kind", "member", "value"),
    [
        # the legitimate twins: named like a secret, declared clear, kept as they are
        (kind, member, value)
        for kind, members in {
            "task.delegate": ["jkt", "token_id"],
            "task.opened": ["jkt", "token_id"],
            "svid.issued": ["jkt", "svid_id"],
            "join_token.created": ["token_id"],
            "home.initialized": ["admin_credential_id"],
            "federation.bundle_added": ["key_ids"],
            "x509_svid.issued": ["x5t#S256"],
        }.items()
        for member in members
        for value in ["abc123", ["k1", "k2"]]
    ],
)
def test_identifiers_named_like_secrets_are_kept(kind: str, member: str, value: object) -> None:
    assert f"{DETAILS}.{member}" in EVENT_FIELDS[kind].clear
    assert mask_details(kind, {member: value}) == {member: value}


ASKED = {
    "subject_token_type": ACCESS_TOKEN_TYPE,
    "authorization_details": [
        {"type": "zerolane_task", "actions": ["read"], "identifier": "finance/q3"}
    ],
    "audience": ["https://gw.example.org"],
    "ttl": 60,
    "max_calls": 2,
    "intent": "Summarize Q3",
    "playbook": "reports",
}


@pytest.mark.parametrize("kind", ["task.delegate", "task.open"])
def test_a_refused_exchange_keeps_what_was_asked_for_and_masks_its_tokens(kind: str) -> None:
    event = Event(
        kind=kind,
        actor=SYSTEM,
        subject="unknown",
        outcome=Outcome.DENIED,
        reason="scope.action",
        time=0.0,
        details={
            "requested": {**ASKED, "subject_token": "parent-token", "actor_token": "svid"},
            "parent_id": None,
        },
    )
    requested = event.unsealed()["details"]["requested"]  # type: ignore[index]
    assert requested == {
        **ASKED,
        "subject_token": mask_value("parent-token"),
        "actor_token": mask_value("svid"),
    }


def test_a_decisions_own_members_are_kept_and_its_credentials_masked() -> None:
    given = {
        "decision_id": "d1",
        "decision": "deny",
        "reasons": ["scope.action"],
        "url": "https://gw.example.org/api/tokens",  # a URL naming tokens: kept
        "resource": "secrets/db-password",  # a resource named like a secret: kept
        "token": "the-task-token",
        "dpop": "the-proof",
        "tool": "rotate_token",
        "arguments": {"token_type": "bearer", "new_password": "p", "ttl": 60},
        "api_key": "k",  # an enforcement point's extra member, undeclared
    }
    assert mask_details("decision", given) == {
        **given,
        "token": mask_value("the-task-token"),
        "dpop": mask_value("the-proof"),
        "arguments": {"token_type": "bearer", "new_password": mask_value("p"), "ttl": 60},
        "api_key": mask_value("k"),
    }


# ---- what the real code paths record --------------------------------------------------------

TEAM_DOC: dict[str, Any] = {**PLAYBOOK_DOC, "name": "team", "delegable": True, "max_depth": 2}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = build_world(tmp_path / "home")
    built.deployment.playbooks.apply(parse_playbook(TEAM_DOC, "tests/audit"), ADMIN)
    yield built
    built.deployment.close()


def exchange(world: World, parent: Agent, parent_token: str, delegate: Agent, **asked: Any) -> Any:
    request = ExchangeRequest(
        subject_token=parent_token,
        subject_token_type=ACCESS_TOKEN_TYPE,
        actor_token=delegate.svid,
        actor_token_type=JWT_TYPE,
        **asked,
    )
    proof = world.proof(parent.key, "POST", TOKEN_URL, parent_token)
    return world.deployment.exchange.exchange(request, proof, url=TOKEN_URL)


def test_a_refused_token_exchange_records_the_asked_scope_in_clear(world: World) -> None:
    """Issue 10: a refused exchange's event kept ``***`` where the asked scope was."""
    agent, helper = world.agent(AGENT), world.agent(PEER)
    parent = world.open(agent, details(actions=["read"]), playbook="team", max_calls=4)
    wider = details(actions=["read", "write"], identifier="finance/q3")
    with pytest.raises(Forbidden):
        exchange(world, agent, parent.token, helper, authorization_details=wider, max_calls=1)
    [denied] = world.events("task.delegate")
    assert (denied["outcome"], denied["reason"]) == ("denied", "scope.action")
    assert denied["details"]["requested"]["authorization_details"] == wider
    assert denied["details"]["requested"]["subject_token_type"] == ACCESS_TOKEN_TYPE
    assert denied["details"]["requested"]["max_calls"] == 1
    text = json.dumps(world.events())
    for token in (parent.token, helper.svid, agent.svid):
        assert token not in text
        assert token.split(".")[2] not in text
    # the twin: the narrower exchange goes through, and its event keeps the key thumbprint
    exchange(world, agent, parent.token, helper, authorization_details=details(), max_calls=1)
    granted = world.events("task.delegate")[-1]
    assert granted["outcome"] == "success"
    assert granted["details"]["jkt"] == helper.jkt
    assert not is_masked(granted["details"]["token_id"])


def test_a_refused_exchange_for_a_person_records_the_asked_scope_in_clear(world: World) -> None:
    agent = world.agent(AGENT)
    request = ExchangeRequest(
        subject_token=JWT,  # an ID token: no issuer is configured, so it is refused
        subject_token_type=ID_TOKEN_TYPE,
        actor_token=agent.svid,
        actor_token_type=JWT_TYPE,
        authorization_details=[*details(actions=["read"])],
        playbook="reports",
        intent="Summarize Q3 for Alice",
    )
    proof = world.proof(agent.key, "POST", TOKEN_URL, agent.svid)
    with pytest.raises(Unauthenticated):
        world.deployment.exchange.exchange(request, proof, url=TOKEN_URL)
    [denied] = world.events("task.open")
    requested = denied["details"]["requested"]
    assert requested["subject_token_type"] == ID_TOKEN_TYPE
    assert requested["authorization_details"] == details(actions=["read"])
    assert JWT not in json.dumps(world.events())


def test_the_events_of_the_real_code_paths_carry_only_declared_members(
    world: World, tmp_path: Path
) -> None:
    """A member added to an event without declaring it would be masked by its name
    only: this tour of the code paths finds any such member."""
    agent, helper = world.agent(AGENT), world.agent(PEER)  # registered, attested
    opened = world.open(agent, playbook="team", max_calls=4)
    with pytest.raises(NotFound):
        world.open(agent, playbook="no-such-playbook")
    exchange(world, agent, opened.token, helper, max_calls=1)
    with pytest.raises(Forbidden):
        exchange(world, agent, opened.token, helper, max_calls=9)
    assert world.ask(agent, opened.token).allowed
    assert not world.ask(agent, opened.token, action="delete").allowed
    deployment = world.deployment
    deployment.lifecycle.complete(opened.task.task_id, AGENT, opened.task.task_id)
    other = world.open(agent)
    deployment.lifecycle.revoke(other.task.task_id, actor=ADMIN)
    deployment.rotate_keys(ADMIN)
    deployment.reload_policies(ADMIN)
    deployment.disable_workload(PEER, ADMIN)
    with pytest.raises(InvalidInput):
        deployment.playbooks.apply_file(Path("/nonexistent/playbook.yaml"), ADMIN)
    initialized, _ = init_home(tmp_path / "new-home", "example.net")
    try:
        events = world.events() + [
            json.loads(r.body) for r in initialized.stores.read_events(0, 1000)
        ]
    finally:
        initialized.close()
    seen: dict[str, set[str]] = {}
    for event in events:
        kind = event["kind"]
        assert kind in EVENT_FIELDS, kind
        declared = {p.split(".")[1] for p in EVENT_FIELDS[kind].paths()}
        undeclared = set(event["details"]) - declared
        assert undeclared == set(), (kind, undeclared)
        seen.setdefault(kind, set()).update(event["details"])
    assert {
        "workload.registered",
        "join_token.created",
        "attestation",
        "svid.issued",
        "playbook.applied",
        "task.opened",
        "task.open",
        "task.delegate",
        "decision",
        "task.completed",
        "task.revoked",
        "keys.rotated",
        "policy.reloaded",
        "workload.disabled",
        "home.initialized",
    } <= set(seen)
    [home] = [e for e in events if e["kind"] == "home.initialized"]
    assert re.fullmatch(r"[0-9a-f]{32}", home["details"]["admin_credential_id"])  # kept


def test_a_token_exchange_refused_over_http_records_the_asked_scope_in_clear(
    world: World,
) -> None:
    """The same through ``POST /v1/token``: the form's asked scope reaches the event."""
    agent, helper = world.agent(AGENT), world.agent(PEER)
    parent = world.open(agent, details(actions=["read"]), playbook="team", max_calls=4)
    url = "http://testserver/v1/token"  # what the TestClient's requests are made for
    with TestClient(create_app(world.deployment), raise_server_exceptions=False) as client:

        def post(asked: list[Any]) -> Any:  # the TestClient's response
            form = {
                "grant_type": GRANT_TYPE,
                "subject_token": parent.token,
                "subject_token_type": ACCESS_TOKEN_TYPE,
                "actor_token": helper.svid,
                "actor_token_type": JWT_TYPE,
                "authorization_details": json.dumps(asked),
                "max_calls": "1",
            }
            proof = world.proof(agent.key, "POST", url, parent.token)
            return client.post("/v1/token", data=form, headers={"DPoP": proof})

        wider = details(actions=["read", "write"])
        refused = post(wider)
        assert (refused.status_code, refused.json()["reason"]) == (403, "scope.action")
        granted = post(details(actions=["read"]))  # the twin
        assert granted.status_code == 200, granted.text
    denied, delegated = world.events("task.delegate")
    assert (denied["outcome"], delegated["outcome"]) == ("denied", "success")
    assert denied["details"]["requested"]["authorization_details"] == wider
    assert denied["details"]["requested"]["subject_token_type"] == ACCESS_TOKEN_TYPE
    assert parent.token not in json.dumps(world.events())
