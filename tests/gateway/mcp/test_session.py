"""One agent session's relaying, against links that record what they were sent.

What an upstream sends goes to this agent only, as the protocol defines it: a server
request under a gateway id to the stream that can take it (or answered with an error at
once), the agent's answer and progress back to the upstream session that asked, an
upstream's withdrawal of its own request under the gateway's id, resource updates only
for what the task may read, unknown notifications nowhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import anyio
import pytest

from zerolane.gateway.mcp import session as session_module
from zerolane.gateway.mcp.config import UpstreamConfig
from zerolane.gateway.mcp.session import (
    MAX_PENDING,
    AgentSession,
    ClientFacts,
    InFlight,
    Outbox,
    client_capabilities,
)
from zerolane.tokens.rfc9068 import TaskTokenClaims

SERVERS = (
    UpstreamConfig(name="a", destination="a.int", url="http://127.0.0.1:1/mcp"),
    UpstreamConfig(name="b", destination="b.int", url="http://127.0.0.1:2/mcp"),
)
SAMPLING = {"jsonrpc": "2.0", "id": 41, "method": "sampling/createMessage", "params": {}}


class RecordingLink:
    """A link that notes what the session sends its upstream."""

    def __init__(self, name: str, *, failing: bool = False) -> None:
        self.name = name
        self.result: dict[str, Any] = {"capabilities": {}}
        self.closed = False
        self.responded: list[dict[str, Any]] = []
        self.notified: list[tuple[str, dict[str, Any] | None]] = []
        self.failing = failing

    async def request(self, method: str, params: Any, on_message: Any) -> dict[str, Any]:
        return {"result": {}}

    async def notify(self, method: str, params: dict[str, Any] | None) -> None:
        if self.failing:
            raise OSError("the upstream went away")
        self.notified.append((method, params))

    async def respond(self, message: dict[str, Any]) -> None:
        self.responded.append(message)


@pytest.fixture
def links(monkeypatch: pytest.MonkeyPatch) -> dict[str, RecordingLink]:
    made: dict[str, RecordingLink] = {}

    @asynccontextmanager
    async def connect(config: UpstreamConfig, **_: Any) -> AsyncIterator[RecordingLink]:
        made[config.name] = RecordingLink(config.name, failing=config.name == "b")
        yield made[config.name]

    monkeypatch.setattr(session_module, "connect", connect)
    return made


def agent_session(capabilities: dict[str, Any], readable: bool = True) -> AgentSession:
    async def may_read(_: AgentSession, server: str, uri: str) -> bool:
        return readable and uri == "res://ok"

    claims = cast(TaskTokenClaims, type("Claims", (), {"task_id": "tsk_1"})())
    return AgentSession(
        "s1",
        claims,
        ClientFacts(capabilities, "2025-11-25"),
        servers=SERVERS,
        pools={},
        may_read=may_read,
        connect_seconds=1,
    )


async def running(session: AgentSession, test: Any) -> None:
    async with anyio.create_task_group() as group:
        await group.start(session.run)
        await session.link("a")
        await session.link("b")
        try:
            await test()
        finally:
            session.close()


def received(outbox: Outbox) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        try:
            found.append(outbox.receive.receive_nowait())
        except (anyio.WouldBlock, anyio.EndOfStream):
            return found


def test_a_server_request_goes_to_its_stream_and_its_answer_back(
    links: dict[str, RecordingLink],
) -> None:
    session = agent_session({"sampling": {}})
    outbox = Outbox()

    async def test() -> None:
        relay = session.on_message("a", outbox)
        await relay({**SAMPLING, "params": {"_meta": {"progressToken": "p"}}})
        [sent] = received(outbox)
        assert sent["id"] == "zl-1"  # the gateway's id, never the upstream's
        # the agent's progress on it goes back, with the defined fields only
        progress = {"progressToken": "p", "progress": 1, "extra": "x"}
        note = {"jsonrpc": "2.0", "method": "notifications/progress", "params": progress}
        assert await session.agent_progress(note)
        assert links["a"].notified == [
            ("notifications/progress", {"progressToken": "p", "progress": 1})
        ]
        unknown = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {}}
        assert not await session.agent_progress(unknown)
        # its answer: to the upstream that asked, under its own id, result only
        assert await session.agent_answered({"id": "zl-1", "result": {"x": 1}, "more": "y"})
        assert links["a"].responded == [{"jsonrpc": "2.0", "id": 41, "result": {"x": 1}}]
        assert not await session.agent_answered({"id": "zl-1", "result": {}})  # once
        assert not await session.agent_answered({"id": 1, "result": {}})
        await relay({**SAMPLING, "id": 42})
        assert await session.agent_answered({"id": "zl-2", "error": {"code": 1, "message": "no"}})
        assert links["a"].responded[-1] == {
            "jsonrpc": "2.0",
            "id": 42,
            "error": {"code": 1, "message": "no"},
        }

    anyio.run(running, session, test)
    outbox.discard()


def test_a_server_request_the_agent_cannot_take_is_answered_at_once(
    links: dict[str, RecordingLink],
) -> None:
    session = agent_session({})  # declared no sampling
    outbox = Outbox()

    async def test() -> None:
        await session.on_message("a", outbox)(SAMPLING)
        assert received(outbox) == []
        [refused] = links["a"].responded
        assert (refused["id"], refused["error"]["code"]) == (41, -32601)

    anyio.run(running, session, test)
    outbox.discard()


def test_a_server_request_with_no_stream_is_answered_at_once_else_finds_one(
    links: dict[str, RecordingLink],
) -> None:
    session = agent_session({"sampling": {}})
    flight = Outbox()

    async def test() -> None:
        unsolicited = session.on_message("a", cast(Outbox, None))
        await unsolicited(SAMPLING)  # no GET stream, nothing in flight
        assert "no open stream" in links["a"].responded[-1]["error"]["message"]
        # one request in flight to that server: its stream takes it
        session.in_flight["1"] = InFlight("a", flight, anyio.CancelScope())
        await unsolicited({**SAMPLING, "id": 43})
        assert [m["id"] for m in received(flight)] == ["zl-1"]
        # the GET stream, when open, takes it first
        stream = Outbox()
        session.stream = stream
        await unsolicited({**SAMPLING, "id": 44})
        assert [m["id"] for m in received(stream)] == ["zl-2"]
        session.stream = None
        stream.discard()

    anyio.run(running, session, test)
    flight.discard()


def test_server_requests_waiting_for_the_agent_are_bounded(
    links: dict[str, RecordingLink],
) -> None:
    session = agent_session({"sampling": {}})
    outbox = Outbox()

    async def test() -> None:
        relay = session.on_message("a", outbox)
        for number in range(MAX_PENDING):
            await relay({**SAMPLING, "id": number})
        assert links["a"].responded == []
        await relay({**SAMPLING, "id": "one-too-many"})
        [refused] = links["a"].responded
        assert refused["id"] == "one-too-many"
        assert "wait for the agent" in refused["error"]["message"]

    anyio.run(running, session, test)
    outbox.discard()


def test_notifications_are_relayed_as_the_gateway_knows_them(
    links: dict[str, RecordingLink],
) -> None:
    session = agent_session({"sampling": {}})
    outbox = Outbox()

    async def test() -> None:
        relay = session.on_message("a", outbox)
        await relay(SAMPLING)
        received(outbox)
        withdrawn = {"requestId": 41, "reason": "timeout"}
        await relay({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": withdrawn})
        await relay({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": withdrawn})
        updated = "notifications/resources/updated"
        await relay({"jsonrpc": "2.0", "method": updated, "params": {"uri": "res://secret"}})
        await relay({"jsonrpc": "2.0", "method": updated, "params": {"uri": "res://ok"}})
        await relay({"jsonrpc": "2.0", "method": "notifications/custom", "params": {}})
        await relay({"jsonrpc": "2.0", "id": 9, "result": {}})  # a stray answer
        relayed = received(outbox)
        # the withdrawal under the gateway's id, once; the readable update only
        assert [m["method"] for m in relayed] == ["notifications/cancelled", updated]
        assert relayed[0]["params"]["requestId"] == "zl-1"
        assert relayed[1]["params"]["uri"] == "res://ok"
        assert not await session.agent_answered({"id": "zl-1", "result": {}})  # withdrawn

    anyio.run(running, session, test)
    outbox.discard()


def test_a_client_notification_reaches_every_link_even_if_one_fails(
    links: dict[str, RecordingLink],
) -> None:
    session = agent_session({})

    async def test() -> None:
        await session.notify_all("notifications/roots/list_changed", None)
        assert links["a"].notified == [("notifications/roots/list_changed", None)]
        assert links["b"].notified == []  # it failed, was logged, and did not stop a
        assert not session.cancel(7)  # nothing in flight under that id

    anyio.run(running, session, test)


def test_only_defined_capabilities_are_relayed() -> None:
    assert client_capabilities(None) == {}
    assert client_capabilities({"roots": {}, "sampling": "yes"}) == {"roots": {}}
