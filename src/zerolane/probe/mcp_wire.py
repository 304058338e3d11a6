"""A minimal MCP client (streamable HTTP, JSON-RPC 2.0) over the probe's wire.

Just what the MCP scenarios send: ``initialize`` and ``notifications/initialized``,
then requests (``tools/list``, ``tools/call``). Each POST carries ``Accept:
application/json, text/event-stream``, the session's ``Mcp-Session-Id`` and protocol
version once known, and the credential with a fresh DPoP proof
(:meth:`ProbeContext.authorization`). An answer is read as JSON or as an SSE stream
(the message answering the request's id). Every POST is an exchange of the evidence;
the session id is masked in it like a credential.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Callable
from typing import Any

from zerolane.probe.context import ProbeContext
from zerolane.probe.credentials import Credential
from zerolane.probe.model import Exchange

#: the protocol version the client asks for (the server may answer another)
PROTOCOL_VERSION = "2025-06-18"
#: response bytes read (a tools/list of a large server is long)
KEEP = 16 * 1024 * 1024
#: tools/list pages read at most
MAX_PAGES = 20
ACCEPT = "application/json, text/event-stream"


def messages_of(exchange: Exchange) -> list[dict[str, Any]]:
    """The JSON-RPC messages of an answer: its JSON body (one message or a batch), or
    the ``data`` of each event of an SSE stream."""
    kind = exchange.response_headers.get("content-type", "").split(";")[0].strip().lower()
    if not exchange.body:
        return []
    if kind == "text/event-stream":
        return [m for data in _sse_data(exchange.body) for m in _parsed(data)]
    return _parsed(exchange.body.decode("utf-8", "replace"))


def _parsed(text: str) -> list[dict[str, Any]]:
    try:
        found = json.loads(text)
    except ValueError:
        return []
    items = found if isinstance(found, list) else [found]
    return [m for m in items if isinstance(m, dict)]


def _sse_data(body: bytes) -> list[str]:
    """The ``data`` of each event of an SSE stream (lines joined, as the spec says)."""
    events: list[str] = []
    data: list[str] = []
    for line in (
        body.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    ):
        if not line:
            if data:
                events.append("\n".join(data))
            data = []
        elif line.startswith("data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        events.append("\n".join(data))
    return events


class McpClient:
    """One MCP session at the profile's MCP endpoint, as ``credential``."""

    def __init__(self, context: ProbeContext, credential: Credential, path: str) -> None:
        self._context = context
        self._credential = credential
        self.url = context.profile.absolute(path)
        self.session: str | None = None
        self.version: str | None = None
        self._ids = itertools.count(1)

    def _headers(self, method: str = "POST") -> dict[str, str]:
        headers = {"Accept": ACCEPT, "Content-Type": "application/json"}
        if self.session is not None:
            headers["Mcp-Session-Id"] = self.session
        if self.version is not None:
            headers["MCP-Protocol-Version"] = self.version
        headers.update(self._context.authorization(self._credential, method, self.url))
        return headers

    def _post(self, role: str, message: dict[str, Any]) -> Exchange:
        body = json.dumps(message, separators=(",", ":")).encode()
        return self._context.wire.send(
            role, "POST", self.url, headers=self._headers(), body=body, keep=KEEP
        )

    def request(
        self, role: str, method: str, params: dict[str, Any] | None = None
    ) -> tuple[Exchange, dict[str, Any] | None]:
        """Send one request; the exchange and the message answering it (``None`` when
        no answer with its id came)."""
        ident = next(self._ids)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": ident, "method": method}
        if params is not None:
            message["params"] = params
        exchange = self._post(role, message)
        answers = [m for m in messages_of(exchange) if m.get("id") == ident]
        return exchange, answers[0] if answers else None

    def notify(self, role: str, method: str) -> Exchange:
        return self._post(role, {"jsonrpc": "2.0", "method": method})

    def open(self) -> tuple[list[Exchange], str | None]:
        """Initialize the session: the exchanges, and why it failed (``None`` when the
        session is open)."""
        exchange, answer = self.request(
            "setup",
            "initialize",
            {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "zerolane-probe", "version": "1"},
            },
        )
        session = exchange.response_headers.get("mcp-session-id")
        if session:
            self.session = session
            self._context.wire.remember(session)
            exchange = dataclasses.replace(
                exchange,
                response_headers={
                    k: self._context.wire.mask(v) for k, v in exchange.response_headers.items()
                },
            )
        if not exchange.accepted or answer is None or not isinstance(answer.get("result"), dict):
            why = exchange.error or f"status {exchange.status}"
            if answer is not None and "error" in answer:
                why = f"JSON-RPC error {error_text(answer, self.mask)}"
            return [exchange], f"initialize was not answered ({why})"
        version = answer["result"].get("protocolVersion")
        self.version = version if isinstance(version, str) else PROTOCOL_VERSION
        return [exchange, self.notify("setup", "notifications/initialized")], None

    def mask(self, text: str) -> str:
        """``text`` with every credential of the run masked (as the evidence is)."""
        return self._context.wire.mask(text)

    def close(self) -> None:
        """End the session (``DELETE`` with its id, as the transport says a client
        should); the answer is not evidence, and a server that keeps sessions until they
        expire (405) is fine."""
        if self.session is not None:
            self._context.wire.send("setup", "DELETE", self.url, headers=self._headers("DELETE"))
            self.session = None

    def tools(self, role: str) -> tuple[list[Exchange], list[str] | None]:
        """Every tool name ``tools/list`` shows (its pages followed); ``None`` when a
        page was not answered with a result."""
        exchanges: list[Exchange] = []
        names: list[str] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            exchange, answer = self.request(
                role, "tools/list", {"cursor": cursor} if cursor else None
            )
            exchanges.append(exchange)
            result = answer.get("result") if answer is not None else None
            if not exchange.accepted or not isinstance(result, dict):
                return exchanges, None
            tools = result.get("tools")
            if not isinstance(tools, list):
                return exchanges, None
            names += [t["name"] for t in tools if isinstance(t, dict) and "name" in t]
            following = result.get("nextCursor")
            if not isinstance(following, str) or not following:
                return exchanges, names
            cursor = following
        return exchanges, names


def error_text(answer: dict[str, Any], mask: Callable[[str], str] = str) -> str:
    """A JSON-RPC error as ``code: message`` (the message ``mask``ed, then cut short:
    a target may quote the credential it was sent, and a secret cut first is no longer
    recognised)."""
    error = answer.get("error")
    if not isinstance(error, dict):
        return "(malformed)"
    return f"{error.get('code')}: {mask(str(error.get('message', '')))[:200]}"
