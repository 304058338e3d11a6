"""Facts for policy tests: an ordinary healthy task and an in-scope request, overridable."""

from __future__ import annotations

import dataclasses
from typing import Any

from zerolane.policy.context import OpenFacts, RequestFacts, TaskFacts
from zerolane.types import Sensitivity, TaskState

NOW = 1_700_000_000.0
AGENT = "spiffe://example.org/agents/reporter"
INTERNAL = ("*.example.org",)


def task(**changes: Any) -> TaskFacts:
    base = TaskFacts(
        id="tsk_1",
        playbook="reports",
        intent="summarise the quarter",
        state=TaskState.ACTIVE,
        actions=("read", "write"),
        resources=("finance/reports/*", "crm/**"),
        destinations=("db.example.org", "api.partner.com"),
        ceiling=Sensitivity.CONFIDENTIAL,
        touched=-1,
        calls_used=0,
        max_calls=10,
        created_at=NOW - 60,
        expires_at=NOW + 300,
        depth=0,
        delegated=False,
        on_behalf_of=None,
    )
    return dataclasses.replace(base, **changes)


def request(**changes: Any) -> RequestFacts:
    base = RequestFacts(
        action="read",
        resource="finance/reports/q3",
        destination="db.example.org",
        sensitivity=Sensitivity.INTERNAL,
        method="GET",
        destination_internal=True,
    )
    return dataclasses.replace(base, **changes)


def opening(**changes: Any) -> OpenFacts:
    base = OpenFacts(
        trust_domain="example.org",
        selectors=("k8s:ns:finance",),
        owner="team-finance",
        playbook="reports",
        opener_matches=True,
        delegable=False,
        max_depth=0,
        playbook_ceiling=Sensitivity.CONFIDENTIAL,
        max_ttl=3600,
        playbook_max_calls=100,
        actions=("read",),
        destinations=("db.example.org",),
        ceiling=Sensitivity.INTERNAL,
        ttl=300,
        max_calls=50,
        depth=0,
        intent="summarise the quarter",
        on_behalf_of=None,
    )
    return dataclasses.replace(base, **changes)
