"""The MCP endpoint agents talk to: the streamable HTTP transport (2025-11-25), enforced.

Every request is checked before anything else reads it: the ``Host`` and ``Origin``
(DNS-rebinding protection: only the public host and listen address, only the public
origin; 421 and 403), the method (405), the media types (415 for a POST that is not
JSON, 406 for an agent that does not accept JSON, or a GET that does not accept
``text/event-stream``), a ``MCP-Protocol-Version`` the gateway does not speak (400),
then the credentials (:mod:`zerolane.gateway.mcp.auth`).

A POST carries one JSON-RPC message. ``initialize`` opens an agent session
(:mod:`zerolane.gateway.mcp.sessions`) and answers with its ``Mcp-Session-Id``; any
other message needs the session id of a session of the same task (400 without one, 404
for another's or an ended one). A request is answered as JSON when nothing else comes
before its answer, else as an SSE stream carrying what the upstream sends in between
(progress, log messages, its requests to the agent) and then the answer.
Notifications and answers are accepted with 202. A GET opens the session's stream for
what the upstreams send outside any request (one at a time: 409); a DELETE ends the
session and its upstream sessions.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import urlsplit

import anyio
import mcp_types as types
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, LATEST_HANDSHAKE_VERSION
from starlette.types import Receive, Scope, Send

from zerolane import __version__
from zerolane.errors import InvalidInput, Unauthenticated, Unavailable, ZerolaneError
from zerolane.gateway.access_log import record_decision, record_refusal, record_task
from zerolane.gateway.client_cert import ClientCertSource
from zerolane.gateway.edge.http import (
    Answer,
    credentials_of,
    error_refusal,
    one_header,
    refusal,
    send_answer,
)
from zerolane.gateway.edge.jsonrpc import denied, invalid_request
from zerolane.gateway.mcp.auth import Gate, Refused
from zerolane.gateway.mcp.config import GatewayConfig
from zerolane.gateway.mcp.events import EventLog, message_event, priming_event
from zerolane.gateway.mcp.messages import Disconnected, Message, TooLarge, parse_message, read_body
from zerolane.gateway.mcp.relay import Relay, capabilities_of, error_of
from zerolane.gateway.mcp.session import AgentSession, ClientFacts, Outbox, client_capabilities
from zerolane.gateway.mcp.sessions import Sessions
from zerolane.gateway.mcp.targets import DECIDED, target_of
from zerolane.gateway.refusals import RefusalAudit, audit_refusal
from zerolane.tokens.rfc9068 import TaskTokenClaims

log = logging.getLogger(__name__)

SESSION_HEADER = b"mcp-session-id"
#: requests of one session running at once at most (beyond: 503 mcp.busy)
MAX_WORKING = 64


class _SlowBody(Exception):
    """A POST's body did not arrive within :data:`BODY_TIMEOUT`."""


#: seconds a POST's body may take to arrive whole (it is read before any decision: a
#: client trickling it in would hold the request open): beyond, 408 request.body_timeout
BODY_TIMEOUT = 10.0
#: the first protocol revision whose clients read a priming event (an event with no data)
PRIMING_SINCE = "2025-11-25"
VERSION_HEADER = b"mcp-protocol-version"
SERVER_INFO = {"name": "zerolane-mcp-gateway", "title": "zerolane MCP gateway"}
#: capabilities the gateway relays, and the flags of each it relays
RELAYED_CAPABILITIES = {
    "tools": ("listChanged",),
    "prompts": ("listChanged",),
    "resources": ("subscribe", "listChanged"),
    "completions": (),
    "logging": (),
}
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-store"),
    (b"x-accel-buffering", b"no"),
]


def allowed_hosts(config: GatewayConfig) -> frozenset[str]:
    """The ``Host`` values accepted: the public host and the listen address."""
    public = urlsplit(config.public_url)
    hosts = {public.netloc, f"{config.host}:{config.port}"}
    if public.port is None:
        hosts.add(f"{public.hostname}:{443 if public.scheme == 'https' else 80}")
    return frozenset(hosts)


def merged_capabilities(results: list[dict[str, Any]]) -> dict[str, Any]:
    """What the agent is told the gateway offers: each relayed capability some upstream
    offers, with a flag set when one upstream sets it; nothing else."""
    merged: dict[str, Any] = {}
    for result in results:
        offered = capabilities_of(result)
        for name, flags in RELAYED_CAPABILITIES.items():
            if not isinstance(offered.get(name), dict):
                continue
            entry = merged.setdefault(name, {})
            for flag in flags:
                if offered[name].get(flag) is True:
                    entry[flag] = True
    return merged


def prefers_sse(accept: str) -> bool:
    """Whether ``accept`` ranks ``text/event-stream`` above ``application/json``: a
    higher q-value, or the same one and listed first (SDK clients list JSON first and
    get JSON answers, the cheaper for them; an SSE stream is used anyway whenever
    something comes before the answer)."""
    ranks: dict[str, tuple[float, int]] = {}
    for position, item in enumerate(accept.lower().split(",")):
        kind, _, rest = item.partition(";")
        quality = 1.0
        for param in rest.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranks.setdefault(kind.strip(), (quality, -position))
    sse, json_rank = ranks.get("text/event-stream"), ranks.get("application/json")
    return sse is not None and sse[0] > 0 and (json_rank is None or sse > json_rank)


def _event(message: dict[str, Any]) -> bytes:
    data = json.dumps(message, separators=(",", ":"))
    return f"event: message\ndata: {data}\n\n".encode()


async def _follow(send: Send, receive: Receive, log: EventLog, after: int) -> None:
    """Send ``log``'s events after number ``after`` as they come, until the stream ends
    (then the response ends) or the agent goes away (the stream stays resumable)."""
    with anyio.CancelScope() as scope:

        async def until_gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            scope.cancel()

        async with anyio.create_task_group() as group:
            group.start_soon(until_gone)
            while True:
                waiter = log.waiter()
                events = log.after(after)
                if events is None:  # dropped while this agent lagged: end, it may resume
                    break
                for number, data in events:
                    body = message_event(log.event_id(number), data)
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                    after = number
                if log.ended and not log.after(after):
                    break
                if not events:
                    await waiter.wait()
            group.cancel_scope.cancel()
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _plain(status: int, reason: str, message: str) -> Answer:
    return refusal(status, reason, message)


class Endpoint:
    """The ASGI app of the gateway's MCP endpoint."""

    def __init__(
        self,
        *,
        config: GatewayConfig,
        gate: Gate,
        relay: Relay,
        sessions: Sessions,
        listener: str = "mcp-gateway",
        refusals: RefusalAudit | None = None,
    ) -> None:
        """``refusals``: where the refusals made before any decision (and not audited
        by the gate) are audited, at its rates (``gateway.refused``)."""
        self._listener = listener
        self._refusals = refusals
        self._gate = gate
        self._relay = relay
        self._sessions = sessions
        self._max_body = config.max_body_bytes
        self._certs = ClientCertSource(config.tls)
        self._hosts = allowed_hosts(config)
        public = urlsplit(config.public_url)
        self._origin = f"{public.scheme}://{public.netloc}"
        self._catalog_servers = config.servers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # pragma: no cover - routed for http only
            return
        method = str(scope["method"]).upper()
        headers = scope["headers"]
        try:
            refused = self._transport_refusal(method, headers)
        except InvalidInput as err:  # a header the transport reads, sent twice
            refused = _plain(400, err.reason, err.message)
        if refused is not None:
            await self._refuse(scope, send, refused)
            return
        try:
            cert = self._certs.from_scope(scope)
            token, proof = credentials_of(headers, client_cert=cert)
        except ZerolaneError as err:  # 400 repeated, 401 missing (with the challenges)
            answer = error_refusal(err, resource_metadata=self._gate.metadata_url)
            await self._refuse(scope, send, answer)
            return
        try:
            if method == "POST":
                await self._post(scope, receive, send, token, proof, cert)
            elif method == "GET":
                await self._get(scope, receive, send, token, proof, cert)
            else:
                await self._delete(scope, send, token, proof, cert)
        except Refused as err:
            if err.audited:
                record_refusal(scope, err.reason)
                await send_answer(send, err.answer)
            else:
                await self._refuse(scope, send, err.answer)
        except InvalidInput as err:  # a malformed message: nothing is relayed
            error = invalid_request(err.reason, err.message)
            answer = Answer(400, error, [("Cache-Control", "no-store")])
            await self._refuse(scope, send, answer, err.reason)
        except (Unauthenticated, Unavailable) as err:
            record_refusal(scope, err.reason)
            await send_answer(send, error_refusal(err, resource_metadata=self._gate.metadata_url))
        except TooLarge:
            answer = refusal(413, "request.too_large", "the request body is too large")
            await self._refuse(scope, send, answer)
        except _SlowBody:
            said = f"the request body did not arrive within {BODY_TIMEOUT:g} s"
            await self._refuse(scope, send, refusal(408, "request.body_timeout", said))
        except Disconnected:
            return

    async def _refuse(
        self, scope: Scope, send: Send, answer: Answer, reason: str | None = None
    ) -> None:
        """Answer a refusal made before any decision, audited as ``gateway.refused`` at
        the rates of ``refusals`` (``reason``: the answer's unless given)."""
        reason = reason or str(answer.body["reason"])
        record_refusal(scope, reason)
        audit_refusal(
            self._refusals, scope, listener=self._listener, reason=reason, status=answer.status
        )
        await send_answer(send, answer)

    # --- checks of the transport ------------------------------------------------------

    def _transport_refusal(self, method: str, headers: list[tuple[bytes, bytes]]) -> Answer | None:
        if method not in ("GET", "POST", "DELETE"):
            answer = _plain(405, "request.method", f"{method[:16]} is not served here")
            return Answer(
                answer.status, answer.body, [*answer.headers, ("Allow", "GET, POST, DELETE")]
            )
        host = one_header(headers, b"host")
        if host is None or host not in self._hosts:
            return _plain(421, "request.host", "this Host is not served here")
        origin = one_header(headers, b"origin")
        if origin is not None and origin != self._origin:
            return _plain(403, "request.origin", "requests from this Origin are refused")
        accept = (one_header(headers, b"accept") or "").lower()
        if method == "POST":
            kind = (one_header(headers, b"content-type") or "").split(";")[0].strip().lower()
            if kind != "application/json":
                return _plain(415, "request.content_type", "a POST carries application/json")
            if "application/json" not in accept and "*/*" not in accept:
                return _plain(406, "request.accept", "the agent must accept application/json")
        if method == "GET" and "text/event-stream" not in accept:
            return _plain(406, "request.accept", "a GET stream is text/event-stream")
        version = one_header(headers, VERSION_HEADER)
        if version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS:
            return _plain(
                400, "mcp.protocol_version", f"protocol version {version[:32]!r} is not spoken here"
            )
        return None

    def _session(self, scope: Scope, claims_task: str) -> AgentSession:
        """The request's session; :class:`Refused` 400 without an id, 404 unknown."""
        session_id = one_header(scope["headers"], SESSION_HEADER)
        if session_id is None:
            raise Refused(
                "mcp.session_missing",
                _plain(400, "mcp.session_missing", "the request needs an Mcp-Session-Id"),
            )
        session = self._sessions.get(session_id, claims_task)
        if session is None:
            raise Refused(
                "mcp.session_unknown", _plain(404, "mcp.session_unknown", "no such MCP session")
            )
        return session

    # --- POST -------------------------------------------------------------------------

    async def _post(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        token: str,
        proof: str | None,
        cert: bytes | None,
    ) -> None:
        try:
            async with asyncio.timeout(BODY_TIMEOUT):
                body = await read_body(receive, self._max_body)
        except TimeoutError:
            raise _SlowBody from None
        message = parse_message(body)
        if message.method == "initialize" and message.kind == "request":
            await self._initialize(scope, send, message, token, proof, cert)
            return
        if message.kind == "request" and message.method in DECIDED:
            await self._decided(scope, receive, send, message, token, proof, cert)
            return
        claims = await self._gate.authenticate(token, proof, "POST", cert)
        session = self._session(scope, claims.task_id)
        session.touch(claims)
        record_task(scope, claims.task_id)
        if message.kind == "request":
            await self._answer(scope, send, receive, session, message)
            return
        if message.kind == "response":
            await session.agent_answered(message.raw)
        else:
            await self._notification(session, message)
        await send(
            {"type": "http.response.start", "status": 202, "headers": [(b"content-length", b"0")]}
        )
        await send({"type": "http.response.body", "body": b""})

    async def _notification(self, session: AgentSession, message: Message) -> None:
        if message.method == "notifications/cancelled":
            session.cancel(message.params.get("requestId"))
        elif message.method == "notifications/progress":  # on a server request
            await session.agent_progress(message.raw)
        elif message.method == "notifications/roots/list_changed":
            await session.notify_all(message.method, None)  # nothing of the agent's params

    async def _initialize(
        self,
        scope: Scope,
        send: Send,
        message: Message,
        token: str,
        proof: str | None,
        cert: bytes | None,
    ) -> None:
        claims = await self._gate.authenticate(token, proof, "POST", cert)
        record_task(scope, claims.task_id)
        if one_header(scope["headers"], SESSION_HEADER) is not None:
            raise Refused(
                "mcp.session_open",
                _plain(
                    400,
                    "mcp.session_open",
                    "initialize opens a session: send it without Mcp-Session-Id",
                ),
            )
        params = message.params
        asked = params.get("protocolVersion")
        version = asked if asked in HANDSHAKE_PROTOCOL_VERSIONS else LATEST_HANDSHAKE_VERSION
        capabilities = params.get("capabilities")
        info = params.get("clientInfo")
        client = ClientFacts(
            client_capabilities(capabilities),
            str(version),
            info if isinstance(info, dict) else {},
        )
        session = await self._sessions.open(claims, client)
        results = [link.result for link in session.links.values()]
        offered = merged_capabilities(results)
        if any(session.failure(s.name) for s in self._catalog_servers):
            offered.setdefault("tools", {})  # a down upstream's last known tools stay listed
        result = {
            "protocolVersion": version,
            "capabilities": offered,
            "serverInfo": {**SERVER_INFO, "version": __version__},
        }
        answer = {"jsonrpc": "2.0", "id": message.raw["id"], "result": result}
        await self._json(send, answer, ((SESSION_HEADER, session.id.encode()),))

    async def _decided(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        message: Message,
        token: str,
        proof: str | None,
        cert: bytes | None,
    ) -> None:
        session_id = one_header(scope["headers"], SESSION_HEADER)
        # the decision verifies the caller: a session of another task is refused below,
        # before anything is relayed
        session = self._sessions.peek(session_id) if session_id is not None else None
        if session is None:  # credentials first (a bad one is a 401), then the session
            claims = await self._gate.authenticate(token, proof, "POST", cert)
            record_task(scope, claims.task_id)
            session = self._session(scope, claims.task_id)
        target = target_of(message, session.view)
        decision = await self._gate.decide(token, proof, target, cert, session.task_id)
        record_decision(scope, decision)
        if decision.task_id != session.task_id:
            raise Refused(
                "mcp.session_unknown", _plain(404, "mcp.session_unknown", "no such MCP session")
            )
        session.touch()
        if not decision.allowed or target.server is None:
            name = str(message.params.get("name") or message.params.get("uri") or message.method)
            error = denied(decision, name[:128])
            answer = {"jsonrpc": "2.0", "id": message.raw["id"], "error": error_of(error)}
            await self._json(send, answer)
            return
        await self._answer(scope, send, receive, session, message, target=target, decision=decision)

    async def _answer(
        self,
        scope: Scope,
        send: Send,
        receive: Receive,
        session: AgentSession,
        message: Message,
        **decided: Any,
    ) -> None:
        """Relay a request; answer JSON when only the answer comes and the agent does not
        prefer SSE, else a resumable SSE stream (:mod:`zerolane.gateway.mcp.events`).
        The request runs in the session: an agent that goes away can resume its
        stream, and a cancellation is its own notification."""
        if session.working >= MAX_WORKING:
            raise Refused(
                "mcp.busy",
                refusal(503, "mcp.busy", f"{MAX_WORKING} requests of this session are running"),
            )
        outbox = Outbox()
        done: list[dict[str, Any] | None] = []
        prefer_sse = prefers_sse(one_header(scope["headers"], b"accept") or "")

        async def work() -> None:
            try:
                done.append(await self._relay.answer(session, message, outbox, **decided))
            except Exception:  # never into the session (it would end every request in it)
                log.exception("MCP session %s: %s failed", session.id[:8], message.method[:64])
                failed = {"code": types.INTERNAL_ERROR, "message": "zerolane: the request failed"}
                done.append({"jsonrpc": "2.0", "id": message.raw["id"], "error": failed})
            finally:
                session.working -= 1
                outbox.close()

        session.working += 1
        try:
            session.spawn(work)
        except Unavailable:
            session.working -= 1
            raise
        first: dict[str, Any] | None = None
        if not prefer_sse:
            try:
                first = await outbox.receive.receive()
            except anyio.EndOfStream:  # the answer came alone
                outbox.receive.close()
                answer = done[0] if done else None
                if answer is not None:
                    await self._json(send, answer)
                    return
                # cancelled by the agent: a stream that ends without an answer
                await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
        log = session.logs.open()
        if first is not None:
            log.append(first)

        async def pump() -> None:
            try:
                async with outbox.receive:
                    async for item in outbox.receive:
                        log.append(item)
                if done and done[0] is not None:
                    log.append(done[0])
            finally:
                log.end()

        session.spawn(pump)
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        if session.client.protocol_version >= PRIMING_SINCE:  # older clients cannot parse it
            body = priming_event(log.event_id(0))
            await send({"type": "http.response.body", "body": body, "more_body": True})
        await _follow(send, receive, log, 0)

    async def _json(
        self, send: Send, message: dict[str, Any], headers: tuple[tuple[bytes, bytes], ...] = ()
    ) -> None:
        body = json.dumps(message, separators=(",", ":")).encode()
        start = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
            *headers,
        ]
        await send({"type": "http.response.start", "status": 200, "headers": start})
        await send({"type": "http.response.body", "body": body})

    # --- GET and DELETE ---------------------------------------------------------------

    async def _get(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        token: str,
        proof: str | None,
        cert: bytes | None,
    ) -> None:
        claims = await self._gate.authenticate(token, proof, "GET", cert)
        record_task(scope, claims.task_id)
        session = self._session(scope, claims.task_id)
        last = one_header(scope["headers"], b"last-event-id")
        if last is not None:
            await self._resume(send, receive, session, last)
            return
        if session.stream is not None:
            raise Refused(
                "mcp.stream_open",
                _plain(409, "mcp.stream_open", "the session's GET stream is already open"),
            )
        session.touch(claims)
        outbox = Outbox()
        session.stream = outbox
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})

        async def until_gone() -> None:  # the agent went away: the stream ends
            while (await receive())["type"] != "http.disconnect":
                pass
            outbox.close()

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(until_gone)
                async with outbox.receive:
                    async for item in outbox.receive:
                        await send(
                            {"type": "http.response.body", "body": _event(item), "more_body": True}
                        )
                group.cancel_scope.cancel()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the agent went away mid-write
        finally:
            outbox.discard()
            if session.stream is outbox:
                session.stream = None

    async def _resume(
        self, send: Send, receive: Receive, session: AgentSession, last_event_id: str
    ) -> None:
        """Send a stream's events after ``last_event_id`` again, then the rest."""
        found = session.logs.find(last_event_id)
        if found is None:
            raise Refused(
                "mcp.event_unknown",
                _plain(400, "mcp.event_unknown", "no stream of this session to resume there"),
            )
        log, after = found
        if log.after(after) is None:
            raise Refused(
                "mcp.event_gone",
                _plain(400, "mcp.event_gone", "the stream's events after this id are gone"),
            )
        session.touch()
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        await _follow(send, receive, log, after)

    async def _delete(
        self, scope: Scope, send: Send, token: str, proof: str | None, cert: bytes | None
    ) -> None:
        claims: TaskTokenClaims = await self._gate.authenticate(token, proof, "DELETE", cert)
        record_task(scope, claims.task_id)
        session = self._session(scope, claims.task_id)
        self._sessions.end(session)
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]}
        )
        await send({"type": "http.response.body", "body": b""})
