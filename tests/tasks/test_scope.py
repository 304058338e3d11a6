"""A requested scope against its playbook: wider is refused with the reason, never narrowed."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tasks.conftest import EVIL, FINANCE, PLAYBOOK, SLACK, WIKI, Agent, World, details
from zerolane.errors import Forbidden, InvalidInput
from zerolane.policy.patterns import is_within
from zerolane.tasks.scope import DETAILS_TYPE, MAX_ITEMS, Scope, requested_scope
from zerolane.types import Sensitivity

# (what makes the request wider than the playbook, its in-bounds twin, the reason)
WIDER = [
    pytest.param(
        details(actions=["read", "delete"]), details(actions=["read"]), "scope.action", id="action"
    ),
    pytest.param(
        details(actions=["admin"]), details(actions=["write"]), "scope.action", id="action-only"
    ),
    pytest.param(
        details(locations=[FINANCE, EVIL]),
        details(locations=[FINANCE]),
        "scope.destination",
        id="destination",
    ),
    pytest.param(
        details(locations=[f"x.{FINANCE}"]),
        details(locations=[SLACK]),
        "scope.destination",
        id="destination-subdomain",
    ),
    pytest.param(
        details(identifier="finance/**"),
        details(identifier="finance/*"),
        "scope.resource",
        id="globstar-vs-star",
    ),
    pytest.param(
        details(identifier="finance/q3/raw"),
        details(identifier="finance/q3"),
        "scope.resource",
        id="deeper-than-star",
    ),
    pytest.param(
        details(resources=["finance/q3", "hr/salaries"]),
        details(resources=["finance/q3", "wiki/team/page"]),
        "scope.resource",
        id="one-of-several",
    ),
    pytest.param(
        details(identifier="fin*/q3"),
        details(identifier="finance/q*"),
        "scope.resource",
        id="prefix-wider-than-literal",
    ),
    pytest.param(
        details(identifier="wiki"),
        details(identifier="wiki/*"),
        "scope.resource",
        id="globstar-excludes-its-root",
    ),
    pytest.param(
        details(datatypes=["restricted"]),
        details(datatypes=["confidential"]),
        "scope.sensitivity",
        id="ceiling",
    ),
    pytest.param(
        details(datatypes=["public", "restricted"]),
        details(datatypes=["public", "internal"]),
        "scope.sensitivity",
        id="highest-label-counts",
    ),
]


@pytest.mark.parametrize(("wide", "narrow", "reason"), WIDER)
def test_a_wider_request_is_refused_and_its_twin_granted(
    wide: list[dict[str, Any]], narrow: list[dict[str, Any]], reason: str
) -> None:
    with pytest.raises(Forbidden) as refused:
        requested_scope(wide, PLAYBOOK)
    assert refused.value.reason == reason
    assert refused.value.message

    granted = requested_scope(narrow, PLAYBOOK)
    assert _granted(granted, narrow[0]) == _asked(narrow[0])


def _asked(entry: dict[str, Any]) -> dict[str, object]:
    """The dimensions an entry names, in the canonical (sorted, unique) form."""
    asked: dict[str, object] = {}
    if "actions" in entry:
        asked["actions"] = tuple(sorted(set(entry["actions"])))
    if "locations" in entry:
        asked["destinations"] = tuple(sorted(set(entry["locations"])))
    if "identifier" in entry or "resources" in entry:
        named = [
            *entry.get("resources", []),
            *([entry["identifier"]] if "identifier" in entry else []),
        ]
        asked["resources"] = tuple(sorted(set(named)))
    if "datatypes" in entry:
        asked["ceiling"] = max(Sensitivity.parse(label) for label in entry["datatypes"])
    return asked


def _granted(scope: Scope, entry: dict[str, Any]) -> dict[str, object]:
    names = {"actions": "actions", "locations": "destinations", "datatypes": "ceiling"}
    names |= {"identifier": "resources", "resources": "resources"}
    return {names[k]: getattr(scope, names[k]) for k in entry if k in names}


def test_an_in_bounds_request_is_granted_exactly_as_asked() -> None:
    scope = requested_scope(
        details(
            actions=["read"],
            locations=[FINANCE],
            identifier="finance/q3",
            datatypes=["public", "internal"],
        ),
        PLAYBOOK,
    )
    assert scope == Scope(("read",), ("finance/q3",), (FINANCE,), Sensitivity.INTERNAL)


def test_dimensions_left_out_take_the_playbooks_value() -> None:
    scope = requested_scope(details(actions=["write"]), PLAYBOOK)
    assert scope.actions == ("write",)
    assert scope.resources == PLAYBOOK.resources
    assert scope.destinations == PLAYBOOK.destinations
    assert scope.ceiling is PLAYBOOK.data_ceiling


def test_no_details_is_the_playbooks_scope() -> None:
    scope = requested_scope(None, PLAYBOOK)
    assert scope == Scope(
        PLAYBOOK.actions, PLAYBOOK.resources, PLAYBOOK.destinations, PLAYBOOK.data_ceiling
    )


def test_identifier_and_resources_combine_and_lists_are_canonical() -> None:
    scope = requested_scope(
        details(
            actions=["write", "read", "read"],
            identifier="wiki/team/*",
            resources=["finance/q3", "finance/q3"],
            locations=[WIKI, FINANCE],
        ),
        PLAYBOOK,
    )
    assert scope.actions == ("read", "write")
    assert scope.resources == ("finance/q3", "wiki/team/*")
    assert scope.destinations == (FINANCE, WIKI)


def test_a_scope_round_trips_and_reads_as_rfc9396() -> None:
    scope = Scope(("read",), ("finance/*",), (FINANCE,), Sensitivity.CONFIDENTIAL)
    assert Scope.from_json(scope.to_json()) == scope
    assert scope.authorization_details() == [
        {
            "type": DETAILS_TYPE,
            "actions": ["read"],
            "locations": [FINANCE],
            "resources": ["finance/*"],
            "datatypes": ["public", "internal", "confidential"],
        }
    ]
    # what the token carries is itself a request the playbook grants as is
    assert requested_scope(scope.authorization_details(), PLAYBOOK) == scope


MALFORMED = [
    pytest.param([{"type": "openid_credential"}], "authorization_details.type", id="wrong-type"),
    pytest.param([{"actions": ["read"]}], "authorization_details.type", id="no-type"),
    pytest.param(
        details(actions=["read"], privileges=["root"]),
        "authorization_details.unknown_field",
        id="unknown-field",
    ),
    pytest.param(details() * 2, "authorization_details.count", id="two-entries"),
    pytest.param(
        [*details(actions=["read"]), *details(actions=["write"])],
        "authorization_details.count",
        id="two-different-entries",
    ),
    pytest.param([], "authorization_details.count", id="no-entry"),
    pytest.param(["zerolane_task"], "authorization_details.field", id="entry-not-object"),
    pytest.param([None], "authorization_details.field", id="entry-null"),
    pytest.param(details(actions="read"), "authorization_details.field", id="actions-string"),
    pytest.param(details(actions=[]), "authorization_details.field", id="actions-empty"),
    pytest.param(details(actions=[1]), "authorization_details.field", id="actions-int"),
    pytest.param(details(actions=[""]), "authorization_details.field", id="actions-blank"),
    pytest.param(
        details(actions=["read"] * (MAX_ITEMS + 1)),
        "authorization_details.field",
        id="actions-too-many",
    ),
    pytest.param(
        details(locations={"host": FINANCE}), "authorization_details.field", id="locations-dict"
    ),
    pytest.param(
        details(resources="finance/q3"), "authorization_details.field", id="resources-string"
    ),
    pytest.param(
        details(datatypes="internal"), "authorization_details.field", id="datatypes-string"
    ),
    pytest.param(
        details(identifier=["finance/q3"]), "authorization_details.field", id="identifier-list"
    ),
    pytest.param(details(identifier=""), "authorization_details.field", id="identifier-blank"),
    pytest.param(
        details(datatypes=["secret"]), "authorization_details.datatypes", id="unknown-label"
    ),
    pytest.param(details(identifier="finance//q3"), "pattern.empty_segment", id="bad-pattern"),
    pytest.param(details(resources=["**/q3"]), "pattern.globstar", id="bad-globstar"),
]


@pytest.mark.parametrize(("bad", "reason"), MALFORMED)
def test_malformed_details_are_invalid_input_with_a_reason(bad: Any, reason: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        requested_scope(bad, PLAYBOOK)
    assert refused.value.reason == reason
    assert refused.value.message


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"type": DETAILS_TYPE}, id="object-not-list"),
        pytest.param({0: {"type": DETAILS_TYPE}}, id="index-keyed-object"),
        pytest.param(DETAILS_TYPE, id="string"),
        pytest.param(b"x", id="bytes"),
    ],
)
def test_details_that_are_not_a_list_are_invalid_input(bad: Any) -> None:
    """Regression: a one-key object used to reach ``details[0]`` and raise ``KeyError``
    (or, keyed by 0, be taken as the entry) instead of being refused."""
    with pytest.raises(InvalidInput) as refused:
        requested_scope(bad, PLAYBOOK)
    assert refused.value.reason.startswith("authorization_details.")


def test_ttl_over_max_ttl_is_refused_and_max_ttl_granted(world: World, agent: Agent) -> None:
    with pytest.raises(Forbidden) as refused:
        world.open(agent, ttl=PLAYBOOK.max_ttl + 1)
    assert refused.value.reason == "scope.ttl"

    opened = world.open(agent, ttl=PLAYBOOK.max_ttl)
    assert opened.task.expires_at == int(world.clock.now()) + PLAYBOOK.max_ttl


def test_max_calls_over_the_playbooks_is_refused_and_its_max_granted(
    world: World, agent: Agent
) -> None:
    with pytest.raises(Forbidden) as refused:
        world.open(agent, max_calls=PLAYBOOK.max_calls + 1)
    assert refused.value.reason == "scope.max_calls"

    assert world.open(agent, max_calls=PLAYBOOK.max_calls).task.max_calls == PLAYBOOK.max_calls
    assert world.open(agent, max_calls=3).task.max_calls == 3


@pytest.mark.parametrize(
    ("options", "reason"),
    [({"ttl": 0}, "task.ttl"), ({"ttl": -5}, "task.ttl"), ({"max_calls": 0}, "task.max_calls")],
)
def test_non_positive_window_or_budget_is_invalid(
    world: World, agent: Agent, options: dict[str, int], reason: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        world.open(agent, ttl=options.get("ttl"), max_calls=options.get("max_calls"))
    assert refused.value.reason == reason


def test_a_wider_open_is_refused_through_the_lifecycle_not_narrowed(
    world: World, agent: Agent
) -> None:
    with pytest.raises(Forbidden) as refused:
        world.open(agent, details(actions=["read", "delete"]))
    assert refused.value.reason == "scope.action"
    assert world.stores.list_tasks(owner=agent.spiffe_id) == []  # nothing was granted

    opened = world.open(agent, details(actions=["read"]))
    assert Scope.from_json(opened.task.scope).actions == ("read",)


ACTION_ALPHABET = ["read", "write", "delete", "admin"]
DESTINATION_ALPHABET = [FINANCE, WIKI, SLACK, EVIL]
RESOURCE_ALPHABET = [
    "finance/*",
    "finance/q*",
    "finance/q3",
    "finance/**",
    "finance/q3/raw",
    "wiki/**",
    "wiki/team/*",
    "hr/*",
    "*/q3",
]


@settings(max_examples=100, deadline=None)
@given(
    actions=st.lists(st.sampled_from(ACTION_ALPHABET), min_size=1, max_size=4),
    destinations=st.lists(st.sampled_from(DESTINATION_ALPHABET), min_size=1, max_size=4),
    resources=st.lists(st.sampled_from(RESOURCE_ALPHABET), min_size=1, max_size=3),
    labels=st.lists(st.sampled_from([s.label for s in Sensitivity]), min_size=1, max_size=3),
)
def test_a_request_is_granted_exactly_or_refused(
    actions: list[str], destinations: list[str], resources: list[str], labels: list[str]
) -> None:
    request = details(
        actions=actions, locations=destinations, resources=resources, datatypes=labels
    )
    ceiling = max(Sensitivity.parse(label) for label in labels)
    within = (
        set(actions) <= set(PLAYBOOK.actions)
        and set(destinations) <= set(PLAYBOOK.destinations)
        and all(any(is_within(r, p) for p in PLAYBOOK.resources) for r in resources)
        and ceiling <= PLAYBOOK.data_ceiling
    )
    if not within:
        with pytest.raises(Forbidden) as refused:
            requested_scope(request, PLAYBOOK)
        assert refused.value.reason.startswith("scope.")
        return
    scope = requested_scope(request, PLAYBOOK)
    assert scope == Scope(
        tuple(sorted(set(actions))),
        tuple(sorted(set(resources))),
        tuple(sorted(set(destinations))),
        ceiling,
    )
