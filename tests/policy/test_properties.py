"""Properties of the default policies: nothing outside the granted scope is ever allowed."""

from __future__ import annotations

import dataclasses
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.policy import factories as f
from zerolane.policy.cedar import CedarEngine
from zerolane.policy.context import (
    RequestFacts,
    TaskFacts,
    is_internal,
    open_policy_request,
    request_policy_request,
)
from zerolane.policy.defaults import DEFAULT_POLICY_DIR
from zerolane.policy.patterns import matches_any
from zerolane.types import Sensitivity, TaskState

ENGINE = CedarEngine(DEFAULT_POLICY_DIR)
ACTIONS = ["read", "write", "delete", "list"]
DESTINATIONS = ["db.example.org", "cache.example.org", "api.partner.com", "evil.net"]
INTERNAL = ("*.example.org",)

segment = st.sampled_from(["a", "b", "ab", "ba", "c"])
pattern_segment = st.sampled_from(["a", "b", "c", "a*", "b*", "*"])
patterns = st.builds(
    lambda segs, globstar: "/".join(segs + (["**"] if globstar else [])),
    st.lists(pattern_segment, min_size=1, max_size=3),
    st.booleans(),
)
values = st.lists(segment, min_size=1, max_size=4).map("/".join)
sensitivities = st.sampled_from(list(Sensitivity))
now = st.floats(min_value=1_600_000_000, max_value=1_900_000_000, allow_nan=False)


@st.composite
def tasks(draw: st.DrawFn, now: float, healthy: bool) -> TaskFacts:
    """Any task; a ``healthy`` one is active, unexpired, with calls left."""
    max_calls = draw(st.integers(min_value=1 if healthy else 0, max_value=8))
    used = st.integers(0, max_calls - 1) if healthy else st.integers(0, 8)
    return TaskFacts(
        id="tsk",
        playbook="p",
        intent="i",
        state=TaskState.ACTIVE if healthy else draw(st.sampled_from(list(TaskState))),
        actions=tuple(draw(st.lists(st.sampled_from(ACTIONS), max_size=3, unique=True))),
        resources=tuple(draw(st.lists(patterns, max_size=3))),
        destinations=tuple(draw(st.lists(st.sampled_from(DESTINATIONS), max_size=3, unique=True))),
        ceiling=draw(sensitivities),
        touched=draw(st.integers(min_value=-1, max_value=3)),
        calls_used=draw(used),
        max_calls=max_calls,
        created_at=now - 10,
        expires_at=now + draw(st.floats(min_value=1 if healthy else -3, max_value=3)),
        depth=draw(st.integers(min_value=0, max_value=3)),
        delegated=draw(st.booleans()),
        on_behalf_of=draw(st.sampled_from([None, "alice@example.org"])),
    )


def _instance(pattern: str, filler: str) -> str:
    """A concrete resource the pattern matches."""
    parts = []
    for seg in pattern.split("/"):
        if seg == "**":
            parts += [filler, filler]
        else:
            parts.append(seg[:-1] + filler if seg.endswith("*") else seg)
    return "/".join(parts)


@st.composite
def requests(draw: st.DrawFn, task: TaskFacts, near: bool) -> RequestFacts:
    """Any request; a ``near`` one stays inside the task's scope where it can."""
    pick = st.sampled_from
    action = draw(pick(task.actions) if near and task.actions else pick(ACTIONS))
    destination = draw(
        pick(task.destinations) if near and task.destinations else pick(DESTINATIONS)
    )
    if near and task.resources:
        resource = _instance(draw(pick(task.resources)), draw(segment))
    else:
        resource = draw(values)
    top = task.ceiling if near else Sensitivity.RESTRICTED
    return RequestFacts(
        action=action,
        resource=resource,
        destination=destination,
        sensitivity=draw(pick([s for s in Sensitivity if s <= top])),
        method=draw(pick(["GET", "POST", ""])),
        destination_internal=is_internal(destination, INTERNAL),
    )


def in_scope(task: TaskFacts, req: RequestFacts, now: float) -> bool:
    """The scope the task was granted, stated directly in Python (exact times)."""
    return (
        task.state is TaskState.ACTIVE
        and now < task.expires_at
        and task.calls_used < task.max_calls
        and req.action in task.actions
        and matches_any(task.resources, req.resource)
        and req.destination in task.destinations
        and req.sensitivity <= task.ceiling
        and not (task.touched >= Sensitivity.CONFIDENTIAL and not req.destination_internal)
    )


@settings(max_examples=400, deadline=None)
@given(data=st.data(), when=now, near=st.booleans())
def test_nothing_outside_the_granted_scope_is_allowed(
    data: st.DataObject, when: float, near: bool
) -> None:
    task = data.draw(tasks(when, healthy=near))
    req = data.draw(requests(task, near))
    result = ENGINE.decide(request_policy_request(f.AGENT, task, req, when))
    assert result.errors == ()
    if result.allowed:
        assert in_scope(task, req, when)
    # and the converse, with times in whole seconds as the context carries them
    whole = math.floor(when)
    floored = dataclasses.replace(task, expires_at=math.floor(task.expires_at))
    assert result.allowed == in_scope(floored, req, whole)


@settings(max_examples=200, deadline=None)
@given(
    opener=st.booleans(),
    ceilings=st.tuples(sensitivities, sensitivities),
    ttl=st.tuples(st.integers(1, 10), st.integers(1, 10)),
    calls=st.tuples(st.integers(1, 10), st.integers(1, 10)),
    delegation=st.tuples(st.booleans(), st.integers(0, 3), st.integers(0, 3)),
)
def test_no_grant_wider_than_the_playbook(
    opener: bool,
    ceilings: tuple[Sensitivity, Sensitivity],
    ttl: tuple[int, int],
    calls: tuple[int, int],
    delegation: tuple[bool, int, int],
) -> None:
    delegable, max_depth, depth = delegation
    facts = dataclasses.replace(
        f.opening(),
        opener_matches=opener,
        playbook_ceiling=ceilings[0],
        ceiling=ceilings[1],
        max_ttl=ttl[0],
        ttl=ttl[1],
        playbook_max_calls=calls[0],
        max_calls=calls[1],
        delegable=delegable,
        max_depth=max_depth,
        depth=depth,
    )
    result = ENGINE.decide(open_policy_request(f.AGENT, facts, f.NOW))
    within = (
        opener
        and ceilings[1] <= ceilings[0]
        and ttl[1] <= ttl[0]
        and calls[1] <= calls[0]
        and (depth == 0 or (delegable and depth <= max_depth))
    )
    assert result.errors == ()
    assert result.allowed == within
