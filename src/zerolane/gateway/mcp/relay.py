"""The agent's requests, relayed to its own upstream sessions or answered by the gateway.

``ping`` is answered here. Listings (``tools/list``, ``prompts/list``,
``resources/list``, ``resources/templates/list``) gather every page of every upstream
that offers them, through the session's own links, and show only what the task may
use (:mod:`zerolane.gateway.mcp.listing`), in one page; a tool listing keeps the last
known tools of an upstream that is down, so their calls answer ``-32004`` rather than
vanish. ``logging/setLevel`` goes to every upstream that logs (the level is this
session's only). ``resources/unsubscribe`` goes to the server the session subscribed
the URI on (only a URI it subscribed to). The decided
requests (:mod:`zerolane.gateway.mcp.targets`) go to their target's server once
allowed, a ``tools/call`` carrying the task and decision ids in ``_meta`` (and a shadow
allow its would-deny reasons: :func:`~zerolane.gateway.edge.jsonrpc.allow_meta`). Any other
method is not relayed (``-32601``): what the gateway cannot decide does not pass.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import anyio
import mcp_types as types
from mcp import MCPError

from zerolane.errors import Unavailable
from zerolane.gateway.edge.jsonrpc import DECISION_META as DECISION_META
from zerolane.gateway.edge.jsonrpc import TASK_META as TASK_META
from zerolane.gateway.edge.jsonrpc import UPSTREAM_UNAVAILABLE, allow_meta, upstream_unavailable
from zerolane.gateway.mcp.catalog import Catalog
from zerolane.gateway.mcp.core import Enforcement
from zerolane.gateway.mcp.listing import permitted, request_facts
from zerolane.gateway.mcp.mapping import ResourceRoute, resource_route
from zerolane.gateway.mcp.messages import Message
from zerolane.gateway.mcp.session import AgentSession, InFlight, Outbox, id_key
from zerolane.gateway.mcp.streamable import NotDelivered
from zerolane.gateway.mcp.targets import Target
from zerolane.gateway.mcp.view import uris_of
from zerolane.tasks.decisions import Decision

log = logging.getLogger(__name__)

#: pages of one upstream listing read at most
MAX_PAGES = 100
#: how long a request other than tools/call may take upstream
REQUEST_SECONDS = 60.0

#: RFC 5424 severities, as MCP's logging/setLevel names them
LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
#: listing method -> (the capability it needs, the result's list key)
LISTINGS = {
    "tools/list": ("tools", "tools"),
    "prompts/list": ("prompts", "prompts"),
    "resources/list": ("resources", "resources"),
    "resources/templates/list": ("resources", "resourceTemplates"),
}


class Failed(Exception):
    """A relayed request that got no answer upstream: the JSON-RPC error to send."""

    def __init__(self, error: MCPError) -> None:
        super().__init__(error.error.message)
        self.error = error


def error_of(err: MCPError) -> dict[str, Any]:
    return err.error.model_dump(by_alias=True, exclude_none=True, mode="json")


def capabilities_of(link_result: dict[str, Any]) -> dict[str, Any]:
    capabilities = link_result.get("capabilities")
    return capabilities if isinstance(capabilities, dict) else {}


class Relay:
    """Answers one agent request within its session."""

    def __init__(self, enforcement: Enforcement, catalog: Catalog) -> None:
        self._core = enforcement
        self._catalog = catalog

    async def answer(
        self,
        session: AgentSession,
        message: Message,
        outbox: Outbox,
        *,
        target: Target | None = None,
        decision: Decision | None = None,
    ) -> dict[str, Any] | None:
        """The response to ``message`` (the agent's id), or None when the agent
        cancelled it (no answer is due)."""
        answer: dict[str, Any] = {"jsonrpc": "2.0", "id": message.raw["id"]}
        try:
            if target is not None and decision is not None:
                result = await self._decided(session, message, outbox, target, decision)
            else:
                result = await self._undecided(session, message, outbox)
        except Failed as err:
            return {**answer, "error": error_of(err.error)}
        except MCPError as err:
            return {**answer, "error": error_of(err)}
        if result is None:
            return None
        if "error" in result:
            return {**answer, "error": result["error"]}
        return {**answer, "result": result.get("result", {})}

    # --- requests relayed as they are -------------------------------------------------

    async def _undecided(
        self, session: AgentSession, message: Message, outbox: Outbox
    ) -> dict[str, Any] | None:
        method = message.method
        if method == "ping":
            return {"result": {}}
        if method in LISTINGS:
            if message.params.get("cursor") is not None:
                raise MCPError(types.INVALID_PARAMS, "the gateway lists everything in one page")
            return {"result": await self._listing(session, method)}
        if method == "logging/setLevel":
            return await self._set_level(session, message, outbox)
        if method == "resources/unsubscribe":
            uri = message.params.get("uri")
            server = session.subscriptions.get(uri) if isinstance(uri, str) else None
            if server is None or not isinstance(uri, str):
                raise MCPError(types.INVALID_PARAMS, "this session is not subscribed to that URI")
            answer = await self._relay(session, server, message, {"uri": uri}, outbox)
            if answer is not None and "error" not in answer:
                session.subscriptions.pop(uri, None)
            return answer
        raise MCPError(types.METHOD_NOT_FOUND, f"method not relayed by the gateway: {method[:64]}")

    async def _set_level(
        self, session: AgentSession, message: Message, outbox: Outbox
    ) -> dict[str, Any]:
        level = message.params.get("level")
        if level not in LOG_LEVELS:
            raise MCPError(types.INVALID_PARAMS, f"level is one of {', '.join(LOG_LEVELS)}")
        servers = [
            name
            for name, link in session.links.items()
            if "logging" in capabilities_of(link.result)
        ]
        if not servers:
            raise MCPError(types.METHOD_NOT_FOUND, "no upstream offers logging")
        failures: list[str] = []

        async def one(server: str) -> None:
            try:
                answer = await self._relay(session, server, message, {"level": level}, outbox)
            except Failed as err:
                failures.append(f"{server}: {err.error.error.message}")
                return
            if answer is not None and "error" in answer:
                failures.append(f"{server}: refused")

        async with anyio.create_task_group() as group:
            for server in servers:
                group.start_soon(one, server)
        if len(failures) == len(servers):
            raise MCPError(types.INTERNAL_ERROR, "; ".join(failures))
        return {"result": {}}

    # --- listings ---------------------------------------------------------------------

    async def _listing(self, session: AgentSession, method: str) -> dict[str, Any]:
        capability, key = LISTINGS[method]
        found: dict[str, list[dict[str, Any]]] = {}

        async def one(server: str) -> None:
            try:
                found[server] = await self._list_all(session, server, method, key)
            except (Failed, MCPError) as err:
                log.info("MCP session %s: %s of %s failed: %s", session.id[:8], method, server, err)
                if method == "tools/list":
                    upstream = self._catalog.upstreams.get(server)
                    kept = upstream.tools if upstream is not None else ()  # the last known
                    found[server] = [_dump(tool) for tool in kept]

        servers = await self._offering(session, capability)
        async with anyio.create_task_group() as group:
            for server in servers:
                group.start_soon(one, server)
        ordered = {server: found[server] for server in servers if server in found}
        if method == "tools/list":
            return {"tools": await self._tools(session, ordered)}
        if method == "prompts/list":
            return {"prompts": await self._prompts(session, ordered)}
        return {key: await self._resources(session, ordered, method)}

    async def _offering(self, session: AgentSession, capability: str) -> list[str]:
        """The servers whose session offers ``capability`` (tools: every server, a down
        one included, so its last known tools stay listed)."""
        names = list(session.view.servers)
        if capability == "tools":
            return names
        offering: list[str] = []
        for name in names:
            try:
                link = await session.link(name)
            except Unavailable:
                continue
            if capability in capabilities_of(link.result):
                offering.append(name)
        if capability == "resources":
            session.view.resource_servers = tuple(offering)
        return offering

    async def _list_all(
        self, session: AgentSession, server: str, method: str, key: str
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor: object = None
        outbox = Outbox()  # what the upstream sends during a listing is not relayed
        outbox.receive.close()
        try:
            for _ in range(MAX_PAGES):
                params: dict[str, Any] = {"cursor": cursor} if isinstance(cursor, str) else {}
                message = Message("request", {"jsonrpc": "2.0", "id": 0, "method": method})
                answer = await self._relay(session, server, message, params, outbox)
                if answer is None or "error" in answer:
                    error = answer.get("error") if answer else None
                    text = error.get("message") if isinstance(error, dict) else "no answer"
                    raise MCPError(types.INTERNAL_ERROR, f"{server}: {method}: {text}")
                result = answer.get("result")
                page = result.get(key) if isinstance(result, dict) else None
                if not isinstance(page, list):
                    raise MCPError(types.INTERNAL_ERROR, f"{server}: {method}: no {key} list")
                items.extend(item for item in page if isinstance(item, dict))
                cursor = result.get("nextCursor") if isinstance(result, dict) else None
                if not isinstance(cursor, str) or not cursor:
                    break
        finally:
            outbox.close()
        return items

    async def _allowed(self, session: AgentSession, routes: Sequence[Any]) -> list[bool]:
        requests = [request_facts(self._core, route) for route in routes]
        shadowed = [route.shadow is not None for route in routes]
        return await anyio.to_thread.run_sync(
            permitted, self._core, session.claims, requests, shadowed
        )

    async def _tools(
        self, session: AgentSession, listed: dict[str, list[dict[str, Any]]]
    ) -> list[dict[str, Any]]:
        raw: dict[tuple[str, str], dict[str, Any]] = {}
        tools: dict[str, list[types.Tool]] = {}
        for server, items in listed.items():
            tools[server] = _valid(items, types.Tool, server, raw)
        routes = list(session.view.set_tools(tools).values())
        verdicts = await self._allowed(session, routes)
        return [
            {**raw[(route.server, route.tool.name)], "name": route.exposed}
            for route, ok in zip(routes, verdicts, strict=True)
            if ok
        ]

    async def _prompts(
        self, session: AgentSession, listed: dict[str, list[dict[str, Any]]]
    ) -> list[dict[str, Any]]:
        raw: dict[tuple[str, str], dict[str, Any]] = {}
        prompts = {
            server: _valid(items, types.Prompt, server, raw) for server, items in listed.items()
        }
        routes = list(session.view.set_prompts(prompts).values())
        verdicts = await self._allowed(session, routes)
        return [
            {**raw[(route.server, route.prompt.name)], "name": route.exposed}
            for route, ok in zip(routes, verdicts, strict=True)
            if ok
        ]

    async def _resources(
        self, session: AgentSession, listed: dict[str, list[dict[str, Any]]], method: str
    ) -> list[dict[str, Any]]:
        field = "uri" if method == "resources/list" else "uriTemplate"
        uris = {
            server: uris_of({"items": items}, "items", field) for server, items in listed.items()
        }
        if method == "resources/list":
            session.view.set_resources(uris)
        else:
            session.view.set_templates(uris)
        candidates: list[tuple[dict[str, Any], ResourceRoute]] = []
        for server, items in listed.items():
            config = session.view.servers[server]
            for item in items:
                uri = item.get(field)
                if not isinstance(uri, str) or not session.view.lists(uri, server):
                    continue
                route = resource_route(config, uri)
                if route is not None:
                    candidates.append((item, route))
        verdicts = await self._allowed(session, [route for _, route in candidates])
        return [item for (item, _), ok in zip(candidates, verdicts, strict=True) if ok]

    async def may_read(self, session: AgentSession, server: str, uri: str) -> bool:
        """Whether the session's task may read ``uri`` of ``server`` now (no spend)."""
        config = session.view.servers.get(server)
        route = resource_route(config, uri) if config is not None else None
        if route is None:
            return False
        return (await self._allowed(session, [route]))[0]

    # --- decided requests -------------------------------------------------------------

    async def _decided(
        self,
        session: AgentSession,
        message: Message,
        outbox: Outbox,
        target: Target,
        decision: Decision,
    ) -> dict[str, Any] | None:
        if target.server is None:  # allowed, yet nowhere to go: never relayed
            raise MCPError(types.INTERNAL_ERROR, "the request has no upstream")
        params = dict(target.params)
        if target.method == "tools/call":
            meta = params.get("_meta") if isinstance(params.get("_meta"), dict) else {}
            assert isinstance(meta, dict)
            params["_meta"] = {**meta, **allow_meta(decision)}  # a shadow allow says so
        try:
            answer = await self._relay(session, target.server, message, params, outbox)
        except Failed as err:
            data = err.error.error.data if isinstance(err.error.error.data, dict) else {}
            reason = str(data.get("reason", "upstream.unavailable"))
            raise upstream_unavailable(decision, reason, err.error.error.message) from err
        uri = params.get("uri")
        subscribed = target.method == "resources/subscribe" and answer and "error" not in answer
        if subscribed and isinstance(uri, str):  # what the session may unsubscribe from
            session.subscriptions[uri] = target.server
        return answer

    async def _relay(
        self,
        session: AgentSession,
        server: str,
        message: Message,
        params: dict[str, Any],
        outbox: Outbox,
    ) -> dict[str, Any] | None:
        """``message`` with ``params`` sent on the session's link to ``server``; the
        upstream's raw answer, or None when the agent cancelled it. :class:`Failed`
        when no answer came (``-32004``, reason ``upstream.*``)."""
        config = session.view.servers[server]
        seconds = config.call_timeout if message.method == "tools/call" else REQUEST_SECONDS
        key = id_key(message.raw.get("id"))
        for again in (False, True):
            try:
                link = await session.link(server)
            except Unavailable as err:
                log.info("MCP session %s: upstream %s: %s", session.id[:8], server, err.message)
                shown = err.message if err.reason == "upstream.credential" else None
                raise _failed(
                    err.reason, shown or f"{server}: the upstream is not available"
                ) from err
            with anyio.CancelScope() as scope:
                flight = InFlight(server, outbox, scope)
                if message.method not in LISTINGS:
                    session.in_flight[key] = flight
                try:
                    with anyio.fail_after(seconds):
                        return await link.request(
                            message.method, params, session.on_message(server, outbox)
                        )
                except NotDelivered as err:
                    if again:
                        log.info("MCP upstream %s: not delivered: %s", server, err)
                        raise _failed(
                            "upstream.unavailable", f"{server}: the upstream is not available"
                        ) from err
                    continue  # never got there: once more, on a new session
                except TimeoutError as err:
                    raise _failed(
                        "upstream.timeout", f"{server}: no answer within {seconds:g} s"
                    ) from err
                except MCPError as err:
                    log.info("MCP upstream %s: %s", server, err.error.message)
                    if err.code != types.CONNECTION_CLOSED:
                        raise _failed(
                            "upstream.error", f"{server}: the upstream's answer could not be read"
                        ) from err
                    raise _failed(
                        "upstream.closed", f"{server}: the upstream closed the session"
                    ) from err
                except Exception as err:  # a transport failure after sending: may have run
                    log.info("MCP upstream %s: %s", server, _describe(err))
                    raise _failed(
                        "upstream.unavailable", f"{server}: the upstream is not available"
                    ) from err
                finally:
                    if session.in_flight.get(key) is flight:
                        del session.in_flight[key]
            if scope.cancelled_caught:
                return None  # the agent cancelled it: the link told the upstream
        raise AssertionError("unreachable")  # pragma: no cover


def _failed(reason: str, message: str) -> Failed:
    data = {"reason": reason, "message": message}
    return Failed(MCPError(UPSTREAM_UNAVAILABLE, f"zerolane: {message}", data))


def _valid(
    items: list[dict[str, Any]],
    model: type[types.Tool] | type[types.Prompt],
    server: str,
    raw: dict[tuple[str, str], dict[str, Any]],
) -> list[Any]:
    """The items that are valid ``model`` objects (others are logged and left out);
    ``raw`` gets each valid item as the upstream sent it, by (server, name): the
    gateway relays that, renamed, so fields it does not know pass unchanged."""
    valid: list[Any] = []
    for item in items:
        try:
            parsed = model.model_validate(item)
        except ValueError as err:
            log.warning("MCP upstream %s: a listed item is not valid: %s", server, err)
            continue
        valid.append(parsed)
        raw[(server, parsed.name)] = item
    return valid


def _dump(tool: types.Tool) -> dict[str, Any]:
    dumped: dict[str, Any] = tool.model_dump(by_alias=True, exclude_none=True, mode="json")
    return dumped


def _describe(err: BaseException) -> str:
    if isinstance(err, BaseExceptionGroup) and err.exceptions:
        return _describe(err.exceptions[0])
    return f"{type(err).__name__}: {err}"
