"""``playbook suggest``'s core: on tasks opened and decided through a real deployment
(memory and SQLite stores), the suggestion is exactly what the tasks were allowed, and
the narrowed playbook, applied, still allows every request they made and refuses every
grant they left unused."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.tasks.conftest import (
    ADMIN,
    AGENT,
    EVIL,
    FINANCE,
    PLAYBOOK_DOC,
    SLACK,
    WIKI,
    Agent,
    World,
    build_world,
)
from tests.tasks.test_exchange import HELPER, exchange
from zerolane.audit.events import Actor
from zerolane.errors import NotFound
from zerolane.posture import suggest as module
from zerolane.posture.suggest import (
    Suggestion,
    narrow_pattern,
    playbook_diff,
    playbook_yaml,
    suggest,
)
from zerolane.store.records import AuditRecord
from zerolane.tasks.playbooks import Playbook, parse_playbook, playbook_from_json
from zerolane.types import Outcome, Sensitivity

START = 1_800_000_000.0
DAY = 86400.0
HR = "hr.example.org"
WIDE_DOC: dict[str, Any] = {
    **PLAYBOOK_DOC,
    "name": "wide",
    "actions": ["delete", "read", "write"],
    "resources": ["finance/*", "finance/ledger/**", "hr/**", "wiki/**"],
    "destinations": [FINANCE, HR, SLACK, WIKI],
    "data_ceiling": "restricted",
    "max_ttl": 7200,
    "max_calls": 100,
    "delegable": True,
    "max_depth": 2,
}
#: what the tasks of :func:`used` are allowed: (action, resource, destination, sensitivity)
ALLOWED = [
    ("read", "finance/q3", FINANCE, "internal"),
    ("read", "finance/q4", FINANCE, "confidential"),
    ("write", "wiki/finance/q3", WIKI, "internal"),
]
#: what they are denied (an unknown destination, a resource outside every pattern)
DENIED = [
    ("read", "finance/q3", EVIL, "internal"),
    ("read", "payroll/x", FINANCE, "internal"),
]


@pytest.fixture(params=["memory", "sqlite"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    home = tmp_path / "home"
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'state.db'}"
    built = build_world(home, url, at=START)
    built.deployment.playbooks.apply(parse_playbook(WIDE_DOC, "tests"), ADMIN)
    yield built
    built.deployment.close()


@pytest.fixture
def agent(world: World) -> Agent:
    return world.agent(AGENT)


def _run(world: World, name: str = "wide", **options: Any) -> Suggestion:
    since = options.pop("since", START - DAY)
    return suggest(world.any_stores, name, since=since, now=world.clock.now(), **options)


def used(world: World, agent: Agent) -> list[str]:
    """Two tasks: one makes every request of ALLOWED and DENIED and completes after
    290 s; the other reads finance/q3 twice and completes after 2 minutes. Their ids."""
    first = world.open(agent, playbook="wide")
    for action, resource, destination, sensitivity in ALLOWED:
        assert world.ask(agent, first.token, action, resource, destination, sensitivity).allowed
    for action, resource, destination, sensitivity in DENIED:
        refused = world.ask(agent, first.token, action, resource, destination, sensitivity)
        assert not refused.allowed
    world.clock.t += 290
    world.deployment.lifecycle.complete(first.task.task_id, AGENT, first.task.task_id)
    second = world.open(agent, playbook="wide")
    for _ in range(2):
        assert world.ask(agent, second.token, "read", "finance/q3", FINANCE, "internal").allowed
    world.clock.t += 120
    world.deployment.lifecycle.complete(second.task.task_id, AGENT, second.task.task_id)
    return [first.task.task_id, second.task.task_id]


def test_it_proposes_exactly_the_used_subset(world: World, agent: Agent) -> None:
    used(world, agent)
    found = _run(world)
    pb = found.suggested
    assert pb.actions == ("read", "write")
    assert pb.destinations == (FINANCE, WIKI)
    # finance/* covered two names (kept as the pattern), wiki/** one (that name)
    assert pb.resources == ("finance/*", "wiki/finance/q3")
    assert pb.data_ceiling is Sensitivity.CONFIDENTIAL  # the highest touched
    assert pb.max_calls == 3  # the most one task was allowed
    assert pb.max_ttl == 300  # the longest task, 290 s, up to a whole minute
    assert (pb.delegable, pb.max_depth) == (False, 0)  # no task delegated
    # what is not evidence is kept as it is
    current = found.current
    assert (pb.name, pb.description, pb.openers, pb.mode) == (
        current.name,
        current.description,
        current.openers,
        current.mode,
    )
    assert (found.tasks, found.delegated, found.allowed, found.denied) == (2, 0, 5, 2)
    assert found.versions == (1,)
    assert found.actions.unused == ("delete",)
    assert found.destinations.unused == (SLACK, HR)
    assert found.unused_resources == ("finance/ledger/**", "hr/**")
    assert [(u.granted, u.suggested, u.requests) for u in found.resources] == [
        ("finance/*", "finance/*", 4),
        ("wiki/**", "wiki/finance/q3", 1),
    ]
    assert found.unused() == [
        "action delete",
        "resource finance/ledger/**",
        "resource hr/**",
        f"destination {SLACK}",
        f"destination {HR}",
        "data_ceiling above confidential (granted restricted)",
        "delegation (max_depth 2): no task delegated",
    ]
    # denied requests are shown apart, and never make it into the suggestion
    refused = {(r.action, r.resource, r.destination): r for r in found.refused}
    assert set(refused) == {(a, r, d) for a, r, d, _ in DENIED}
    assert refused[("read", "payroll/x", FINANCE)].reasons == ("scope.resource",)
    assert "scope.destination" in refused[("read", "finance/q3", EVIL)].reasons
    assert EVIL not in pb.destinations
    assert not any(p.startswith("payroll") for p in pb.resources)
    assert found.outside == ()


def test_the_narrowed_playbook_allows_what_was_used_and_refuses_what_was_not(
    world: World, agent: Agent
) -> None:
    used(world, agent)
    world.deployment.playbooks.apply(_run(world).suggested, ADMIN)
    agent = world.agent(AGENT)  # a fresh SVID
    task = world.open(agent, playbook="wide")
    for action, resource, destination, sensitivity in ALLOWED:  # the legitimate twins
        assert world.ask(agent, task.token, action, resource, destination, sensitivity).allowed
    assert world.ask(agent, task.token).reasons == ("task.budget_exhausted",)  # 3 calls
    task = world.open(agent, playbook="wide")
    for action, resource, destination, reason in [
        ("delete", "finance/q3", FINANCE, "scope.action"),  # granted, never used
        ("read", "hr/people", HR, "scope.destination"),
        ("read", "finance/ledger/2027", FINANCE, "scope.resource"),
        ("write", "wiki/other/page", WIKI, "scope.resource"),  # narrowed to one page
    ]:
        refused = world.ask(agent, task.token, action, resource, destination, "internal")
        assert not refused.allowed
        assert reason in refused.reasons
    wider = [{"type": "zerolane_task", "actions": ["read"], "locations": [FINANCE]}]
    with pytest.raises(Exception, match="ttl"):  # asking the old window is refused
        world.open(agent, wider, playbook="wide", ttl=3600)


def test_the_yaml_and_diff_round_trip(world: World, agent: Agent) -> None:
    used(world, agent)
    found = _run(world)
    text = playbook_yaml(found.suggested)
    assert text.startswith("name: wide\ndescription: ")
    assert "max_ttl: 5m\n" in text
    assert parse_playbook(_yaml(text), "suggested.yaml") == found.suggested
    diff = found.diff()
    assert diff.startswith("--- wide (current)\n+++ wide (suggested)\n")
    assert "\n-- delete\n" in diff
    assert "\n-- hr/**\n" in diff
    assert "\n+- wiki/finance/q3\n" in diff
    assert "\n-max_ttl: 2h\n+max_ttl: 5m\n" not in diff  # the ceiling line sits between
    assert "\n+max_ttl: 5m\n" in diff
    assert playbook_diff(found.suggested, found.suggested, "wide") == ""
    shown = found.as_json()
    assert shown["resources"] == {
        "granted": ["finance/*", "finance/ledger/**", "hr/**", "wiki/**"],
        "used": [
            {"granted": "finance/*", "suggested": "finance/*", "requests": 4},
            {"granted": "wiki/**", "suggested": "wiki/finance/q3", "requests": 1},
        ],
        "unused": ["finance/ledger/**", "hr/**"],
    }
    assert shown["max_calls"] == {"granted": 100, "used": 3, "suggested": 3}
    assert shown["max_ttl"] == {"granted": 7200, "used": 290, "suggested": 300}
    assert shown["diff"] == diff
    assert json.loads(json.dumps(shown)) == shown  # plain JSON throughout


def _yaml(text: str) -> dict[str, Any]:
    import yaml

    loaded = yaml.safe_load(text)
    assert isinstance(loaded, dict)
    return loaded


def test_headroom_and_kept_patterns(world: World, agent: Agent) -> None:
    used(world, agent)
    found = _run(world, headroom=50, narrow=False)
    assert found.suggested.max_calls == 5  # 3 + 50 %, rounded up
    assert found.suggested.max_ttl == 480  # 290 s + 50 % = 435 s, up to 8 minutes
    assert found.suggested.resources == ("finance/*", "wiki/**")  # as granted
    capped = _run(world, headroom=1000)
    assert capped.suggested.max_calls == 33
    assert capped.suggested.max_ttl == 3240
    with pytest.raises(ValueError, match="headroom"):
        _run(world, headroom=-1)


def test_a_delegated_task_counts_toward_its_root(world: World, agent: Agent) -> None:
    helper = world.agent(HELPER)
    parent = world.open(agent, playbook="wide")
    for name in ("q1", "q2"):
        assert world.ask(agent, parent.token, "read", f"finance/{name}").allowed
    child = exchange(world, agent, parent.token, helper)
    for _ in range(3):
        assert world.ask(helper, child.token, "read", "wiki/finance/q3", WIKI).allowed
    world.clock.t += 30
    world.deployment.lifecycle.complete(parent.task.task_id, AGENT, parent.task.task_id)
    found = _run(world)
    assert (found.tasks, found.delegated) == (1, 1)
    assert found.calls_used == 5  # the child's budget was carved out of its parent
    assert (found.suggested.delegable, found.suggested.max_depth) == (True, 1)
    assert found.depth_used == 1
    assert "delegation deeper than 1 (max_depth 2)" in found.unused()
    assert found.suggested.resources == ("finance/*", "wiki/finance/q3")


def test_grant_brokers_are_kept_only_when_issued(world: World, agent: Agent) -> None:
    doc = {**WIDE_DOC, "grants": {"hmac": None, "static": {}}}
    world.deployment.playbooks.apply(parse_playbook(doc, "tests"), ADMIN)
    task = world.open(agent, playbook="wide")
    assert world.ask(agent, task.token).allowed
    details = {"task_id": task.task.task_id, "broker": "hmac", "handle": "h", "expires_at": 1}
    world.deployment.audit.record(
        "grant.issue",
        actor=Actor("workload", AGENT),
        subject="lease",
        outcome=Outcome.SUCCESS,
        details=details,
    )
    world.deployment.audit.record(  # failed: not a use
        "grant.issue",
        actor=Actor("workload", AGENT),
        subject="lease2",
        outcome=Outcome.FAILURE,
        details={**details, "broker": "static"},
    )
    found = _run(world)
    assert found.grants.used == ("hmac",)
    assert found.grants.unused == ("static",)
    assert [g.broker for g in found.suggested.grants] == ["hmac"]
    assert "grant static" in found.unused()


def test_no_task_in_the_window_is_no_evidence(world: World, agent: Agent) -> None:
    with pytest.raises(NotFound) as none:
        _run(world)
    assert none.value.reason == "playbook.no_evidence"
    assert "no task was opened from playbook 'wide'" in none.value.message
    used(world, agent)
    with pytest.raises(NotFound) as before:  # they were opened before the window
        _run(world, since=world.clock.now() + 1)
    assert before.value.reason == "playbook.no_evidence"


def test_tasks_that_were_only_denied_are_no_evidence(world: World, agent: Agent) -> None:
    task = world.open(agent, playbook="wide")
    assert not world.ask(agent, task.token, "read", "payroll/x", FINANCE).allowed
    with pytest.raises(NotFound) as caught:
        _run(world)
    assert caught.value.reason == "playbook.no_evidence"
    assert "1 task(s)" in caught.value.message
    assert "0 allowed, 1 denied" in caught.value.message


def test_an_unknown_playbook_is_refused(world: World) -> None:
    with pytest.raises(NotFound) as caught:
        _run(world, "nope")
    assert caught.value.reason == "playbook.unknown"


def test_what_a_narrower_version_no_longer_grants_is_not_added_back(
    world: World, agent: Agent
) -> None:
    task = world.open(agent, playbook="wide")
    assert world.ask(agent, task.token, "read", "hr/people", HR).allowed
    assert world.ask(agent, task.token, "delete", "finance/q1").allowed
    narrower = {**WIDE_DOC, "actions": ["read"], "destinations": [FINANCE]}
    narrower["resources"] = ["finance/*"]
    world.deployment.playbooks.apply(parse_playbook(narrower, "tests"), ADMIN)
    later = world.open(agent, playbook="wide")
    assert world.ask(agent, later.token, "read", "finance/q2").allowed
    found = _run(world)
    assert found.versions == (1, 2)
    assert found.outside == ("action delete", f"destination {HR}", "resource hr/people")
    pb = found.suggested
    assert (pb.actions, pb.destinations, pb.resources) == (("read",), (FINANCE,), ("finance/*",))


def test_shadow_allows_and_unmapped_refusals_are_listed_apart(world: World, agent: Agent) -> None:
    task = world.open(agent, playbook="wide")
    assert world.ask(agent, task.token).allowed
    # a request let through in shadow mode that enforcement would have denied
    world.deployment.audit.record(
        "decision",
        actor=Actor("workload", AGENT),
        subject=task.task.task_id,
        outcome=Outcome.SUCCESS,
        reason="shadow",
        details={
            "decision": "shadow",
            "would_deny": ["scope.action"],
            "shadow": ["playbook:wide"],
            "action": "purge",
            "resource": "finance/q3",
            "destination": FINANCE,
            "sensitivity": "restricted",
        },
    )
    # refused before it was mapped: a proof by another key
    from cryptography.hazmat.primitives.asymmetric import ec

    thief = ec.generate_private_key(ec.SECP256R1())
    url = f"https://{FINANCE}/finance/q3"
    forged = world.proof(thief, "GET", url, task.token)
    assert not world.ask(agent, task.token, proof=forged).allowed
    found = _run(world)
    assert (found.allowed, found.denied, found.would_deny) == (1, 1, 1)
    shadow = [r for r in found.refused if r.shadow]
    assert [(r.action, r.reasons) for r in shadow] == [("purge", ("scope.action",))]
    unmapped = [r for r in found.refused if not r.shadow]
    assert [(r.action, r.resource, r.reasons) for r in unmapped] == [
        (None, None, ("dpop.key_mismatch",))
    ]
    assert found.suggested.actions == ("read",)
    assert found.suggested.data_ceiling is Sensitivity.INTERNAL  # not the shadow's


def test_a_task_gone_from_the_store_counts_its_requests_only(world: World) -> None:
    audit = world.deployment.audit
    actor = Actor("workload", AGENT)
    audit.record(
        "task.opened",
        actor=actor,
        subject="gone",
        outcome=Outcome.SUCCESS,
        details={"playbook": "wide", "playbook_version": "1"},  # a version not an int
    )
    audit.record(
        "decision",
        actor=actor,
        subject="gone",
        outcome=Outcome.SUCCESS,
        details={
            "decision": "allow",
            "action": "read",
            "resource": "finance/q3",
            "destination": FINANCE,
            "sensitivity": "internal",
        },
    )
    found = _run(world)
    assert (found.tasks, found.missing, found.calls_used, found.longest) == (1, 1, 0, 0.0)
    assert found.versions == ()
    assert found.suggested.max_calls == 1  # at least one
    assert found.suggested.max_ttl == 60  # at least a minute


def test_a_task_still_open_lasts_until_now_and_one_past_its_window_ran_out(
    world: World, agent: Agent
) -> None:
    live = world.open(agent, playbook="wide", ttl=600)
    assert world.ask(agent, live.token).allowed
    world.clock.t += 100
    assert _run(world).longest == 100
    world.clock.t += 1000  # never completed: it ran until its window closed
    found = _run(world)
    assert (found.longest, found.ran_out) == (600, 1)


def test_the_window_is_found_by_sequence_and_read_by_pages(world: World, agent: Agent) -> None:
    old = world.open(agent, playbook="wide")
    assert world.ask(agent, old.token, "write", "wiki/old", WIKI).allowed
    world.clock.t += 10 * DAY
    since = world.clock.now()
    agent = world.agent(AGENT)  # a fresh SVID
    new = world.open(agent, playbook="wide")
    assert world.ask(agent, new.token).allowed
    for page in (1, 3, 1000):
        found = _run(world, since=since, page=page)
        assert (found.tasks, found.suggested.actions) == (1, ("read",))
        assert found.suggested.destinations == (FINANCE,)
    # the old task's events were never read: the search skipped them
    total = world.any_stores.last_event()
    assert total is not None
    assert _run(world, since=since).events_read < total.seq


class _Injected:
    """The world's stores, with ``extra`` records (kind, time, outcome, body) appended to
    the log as it is read (every other sequence number: a log with gaps), and its head
    said to be ``shift`` from the last of them."""

    def __init__(self, world: World, extra: list[tuple[str, str, str, str]], shift: int) -> None:
        self._stores = world.any_stores
        head = self._stores.last_event()
        assert head is not None
        self._records = [
            AuditRecord(head.seq + 2 * i + 2, f"e{i}", time, kind, outcome, body, "", "")
            for i, (kind, time, outcome, body) in enumerate(extra)
        ]
        self._head = dataclasses.replace(self._records[-1], seq=self._records[-1].seq + shift)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stores, name)

    def last_event(self) -> AuditRecord | None:
        return self._head

    def read_events(self, after_seq: int = 0, limit: int = 1000) -> list[AuditRecord]:
        stored = self._stores.read_events(after_seq, limit)
        return [*stored, *(r for r in self._records if r.seq > after_seq)][:limit]


@pytest.mark.parametrize("shift", [0, -1, 5])  # the head: the last record, before, beyond
def test_records_it_cannot_read_are_skipped(
    world: World, agent: Agent, monkeypatch: pytest.MonkeyPatch, shift: int
) -> None:
    task = world.open(agent, playbook="wide")
    assert world.ask(agent, task.token).allowed
    at = "2027-01-15T08:00:00+00:00"
    tid = task.task.task_id

    def body(subject: str = tid, **details: object) -> str:
        return json.dumps({"subject": subject, "details": details})

    def mapped(resource: str, sensitivity: str | None = None) -> str:
        facts = {"resource": resource, "destination": FINANCE, "sensitivity": sensitivity}
        return body(decision="allow", action="read", **{k: v for k, v in facts.items() if v})

    ok, denied = "success", "denied"
    extra = [
        ("decision", at, ok, "not json"),
        ("decision", at, ok, "[]"),
        ("decision", at, ok, json.dumps({"details": {}})),  # no subject
        ("task.opened", "yesterday", ok, body(subject="x", playbook="wide")),  # a bad time
        ("decision", at, ok, body(decision="allow", action="read")),  # allowed, unmapped
        ("decision", at, ok, mapped("finance/q9", sensitivity="secret")),
        ("decision", at, ok, mapped("finance/q8")),  # no sensitivity
        ("decision", at, ok, mapped("finance/*", sensitivity="internal")),  # not a name
        ("decision", at, ok, mapped("finance/q3", sensitivity="internal")),  # the cache
        ("decision", at, denied, body(decision="deny")),  # no reasons
        ("task.delegate", at, ok, body(subject="c", parent_id="zz")),
        ("grant.issue", at, ok, body(subject="l", task_id="other", broker="hmac")),
        ("grant.issue", at, ok, body(subject="l", task_id=tid)),  # no broker
        ("decision", at, ok, mapped("finance/q7", sensitivity="internal")),  # the last
    ]
    monkeypatch.setattr(module, "_CACHE", 1)
    stores: Any = _Injected(world, extra, shift)
    found = suggest(stores, "wide", since=START - DAY, now=world.clock.now())
    assert found.tasks == 1  # the event of a bad time is not one
    assert found.allowed == (6 if shift < 0 else 7)  # the last one is past a head before it
    assert found.outside == ("resource finance/*",)
    assert found.ceiling_used is Sensitivity.INTERNAL
    assert found.resources[0].requests == (4 if shift < 0 else 5)
    assert [(r.reasons, r.count) for r in found.refused] == [(("unknown",), 1)]
    assert found.grants.used == ()


def test_denied_requests_and_outside_uses_are_bounded(
    world: World, agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(module, "MAX_REFUSED", 1)
    monkeypatch.setattr(module, "MAX_OUTSIDE", 1)
    task = world.open(agent, playbook="wide")
    assert world.ask(agent, task.token).allowed
    for name in ("a", "a", "b"):
        assert not world.ask(agent, task.token, "read", f"payroll/{name}").allowed
    world.deployment.playbooks.apply(parse_playbook({**WIDE_DOC, "actions": ["write"]}, "t"), ADMIN)
    later = world.open(agent, playbook="wide")
    assert world.ask(agent, later.token, "write", "wiki/x", WIKI).allowed
    assert world.ask(agent, task.token, "read", "finance/q3", FINANCE).allowed
    assert world.ask(agent, task.token, "read", "hr/x", HR).allowed
    found = _run(world)
    assert [(r.resource, r.count) for r in found.refused] == [("payroll/a", 2)]
    assert found.refused_other == 1
    assert len(found.outside) == 1


@pytest.mark.parametrize(
    ("granted", "resources", "narrowed"),
    [
        ("finance/*", ["finance/q3"], "finance/q3"),  # one used: that one
        ("finance/*", ["finance/q3", "finance/q4"], "finance/*"),
        ("wiki/**", ["wiki/a/x", "wiki/a/y"], "wiki/a/*"),
        ("wiki/**", ["wiki/a/x/1", "wiki/a/y"], "wiki/a/**"),  # lengths vary
        ("wiki/**", ["wiki/a", "wiki/b/c"], "wiki/**"),
        ("rep/q*", ["rep/q1", "rep/q2"], "rep/q*"),  # the granted prefix is kept
        ("a/*/c", ["a/x/c", "a/y/c"], "a/*/c"),
        ("**", ["a", "b/c"], "**"),
        ("**", ["a/b", "a/c"], "a/*"),
        ("x*/**", ["xa/b", "xb/c/d"], "x*/**"),
        ("finance/*", ["wiki/x"], "finance/*"),  # never wider: the granted one
    ],
)
def test_narrowing(granted: str, resources: list[str], narrowed: str) -> None:
    assert narrow_pattern(granted, resources) == narrowed


def test_narrowing_needs_a_resource() -> None:
    with pytest.raises(ValueError, match="no resource"):
        narrow_pattern("finance/*", [])


def test_the_yaml_of_a_playbook_with_everything_loads_back() -> None:
    doc = {**WIDE_DOC, "grants": {"hmac": {"ttl": 300}}, "mode": "shadow"}
    pb: Playbook = parse_playbook(doc, "t")
    text = playbook_yaml(pb)
    assert text.index("mode: shadow") < text.index("openers:") < text.index("grants:")
    assert parse_playbook(_yaml(text), "t") == pb
    assert playbook_from_json(json.dumps(_yaml(text))) == pb


def test_a_playbook_whose_ceiling_was_used_and_that_never_delegated(
    world: World, agent: Agent
) -> None:
    task = world.open(agent)  # the "reports" playbook: not delegable, confidential
    assert world.ask(agent, task.token, "read", "finance/q3", FINANCE, "confidential").allowed
    found = _run(world, "reports")
    assert found.unused() == [
        "action write",
        "resource wiki/**",
        f"destination {SLACK}",
        f"destination {WIKI}",
    ]
    assert found.suggested.data_ceiling is Sensitivity.CONFIDENTIAL
    assert (found.suggested.delegable, found.suggested.max_depth) == (False, 0)
