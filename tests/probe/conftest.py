"""The probe against zerolane's own HTTP gateway (the gateway tests' stack: control
plane, gateway, echo upstream) with its credentials from the home (``HomeSource``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.gateway.conftest import (  # noqa: F401  (fixtures)
    ADMIN,
    AUDIENCE,
    PLAYBOOK,
    TD,
    Stack,
    stack,
    upstream,
)
from zerolane.cli.probe_home import HomeSource
from zerolane.probe.context import ProbeContext
from zerolane.probe.profile import Call, TargetProfile
from zerolane.probe.wire import Wire
from zerolane.tasks.playbooks import parse_playbook

PROBE_PLAYBOOK: dict[str, Any] = {
    **PLAYBOOK,
    "name": "probe",
    "description": "What the probe may do at the gateway tests' stack.",
    "openers": {"spiffe_ids": [f"spiffe://{TD}/zerolane/*"]},
    "delegable": True,
    "max_depth": 1,
}
#: the allowed and forbidden requests of the stack's gateway
ALLOWED = Call("GET", "/finance/reports/q3")
FORBIDDEN = Call("DELETE", "/finance/reports/q3")
#: a read the task may not make (restricted, above the playbook's data ceiling): what the
#: path tricks aim at
FORBIDDEN_PATH = Call("GET", "/finance/reports/payroll")


def gateway_profile(stack: Stack) -> TargetProfile:  # noqa: F811
    return TargetProfile(
        stack.public_url, ALLOWED, FORBIDDEN, echo=ALLOWED, forbidden_path=FORBIDDEN_PATH
    )


@pytest.fixture(scope="session")
def probe_playbook(stack: Stack) -> str:  # noqa: F811
    stack.deployment.playbooks.apply(parse_playbook(PROBE_PLAYBOOK, "probe-tests"), ADMIN)
    return "probe"


@pytest.fixture
def home_source(stack: Stack, probe_playbook: str) -> Iterator[HomeSource]:  # noqa: F811
    source = HomeSource(stack.deployment, stack.control.url, probe_playbook, audience=[AUDIENCE])
    yield source
    source.close()


@pytest.fixture
def gateway_context(stack: Stack, home_source: HomeSource) -> Iterator[ProbeContext]:  # noqa: F811
    context = ProbeContext(gateway_profile(stack), home_source, Wire())
    yield context
    context.close()
    context.wire.close()
