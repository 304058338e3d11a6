"""What the tests of decisions over SQLite from several processes share: one read
request of the ``reports`` playbook's scope, a world over a SQLite home, and the two
ways a decider is called (``decide``, ``decide_async``). A test module takes the
fixtures by importing ``agent_fixture, mode_fixture, sqlite_world_fixture``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tasks.conftest import AGENT, FINANCE, Agent, World, build_world
from zerolane.tasks.decisions import DecideInput

READ_URL = f"https://{FINANCE}/finance/q3"
READ = DecideInput(
    method="GET",
    url=READ_URL,
    action="read",
    resource="finance/q3",
    destination=FINANCE,
    sensitivity="internal",
)


@pytest.fixture(name="mode", params=["sync", "async"])
def mode_fixture(request: pytest.FixtureRequest) -> str:
    """How the decider is called: ``decide`` or ``decide_async``."""
    return str(request.param)


@pytest.fixture(name="world")
def sqlite_world_fixture(tmp_path: Path) -> Iterator[World]:
    """A home over SQLite (the state several processes share)."""
    built = build_world(tmp_path / "home", "sqlite:///zerolane.db")
    yield built
    built.deployment.close()


@pytest.fixture(name="agent")
def agent_fixture(world: World) -> Agent:
    return world.agent(AGENT)
