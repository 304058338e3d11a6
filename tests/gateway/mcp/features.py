"""What the MCP feature tests run: a gateway in front of two upstreams, an agent's MCP
client with the callbacks a test gives it, and a Python upstream that notes what it got.

Upstream ``conformance`` is the official conformance suite's reference server (tools
with progress, logging, sampling and elicitation; static resources, a template,
prompts, completion). Upstream ``features`` is a Python SDK server (in this process)
for what that server never does: it sends ``notifications/resources/updated`` when
subscribed to (first for a URI no task here may read, then for the one subscribed to),
it has a tool that runs until it is cancelled, and one that asks the agent for a
sampling and then an elicitation in its own request's stream (the reference server asks
on its GET stream, and expects a sampling result to carry a ``method``, which no
client's does). It notes every JSON-RPC message it receives, so a test can say what
never reached it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
from mcp import ClientSession, MCPError
from mcp.client.session import ElicitationFnT, LoggingFnT, MessageHandlerFnT, SamplingFnT
from mcp.client.streamable_http import streamable_http_client
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.message import ServerMessageMetadata
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.gateway.mcp.conftest import ADMIN, TD, Stack
from tests.gateway.mcp.harness import GatewayServer
from tests.gateway.mcp.test_resumable_e2e import CONFORMANCE, conformance_server
from zerolane.cli.background import free_port
from zerolane.cli.mcp_gateway import enforcement_of
from zerolane.gateway.edge.jsonrpc import FORBIDDEN
from zerolane.gateway.mcp import parse_gateway_config
from zerolane.sdk import Task
from zerolane.tasks.playbooks import parse_playbook

PLAYBOOK = "feature-user"
#: the tools of each upstream a task here may call
CONFORMANCE_TOOLS = [
    "test_simple_text",
    "test_tool_with_logging",
    "test_tool_with_progress",
    "test_sampling",
    "test_elicitation",
]
FEATURES_TOOLS = ["slow_task", "ask_model"]
#: what a task of the playbook asks for: part of each feature
ACTIONS = [
    "mcp:conformance/resources/read",
    "mcp:conformance/prompts/get",
    *(f"mcp:conformance/{tool}" for tool in CONFORMANCE_TOOLS),
    "mcp:features/resources/read",
    *(f"mcp:features/{tool}" for tool in FEATURES_TOOLS),
]
RESOURCES = [
    "mcp/conformance/resources/test/static-text",  # not static-binary, not watched-resource
    "mcp/conformance/resources/test/template/*/data",
    "mcp/conformance/prompts/test_simple_prompt",  # not the embedded resource or image ones
    "mcp/conformance/prompts/test_prompt_with_arguments",
    *(f"mcp/conformance/{tool}" for tool in CONFORMANCE_TOOLS),
    "mcp/features/resources/features/watched",  # not features://secret
    *(f"mcp/features/{tool}" for tool in FEATURES_TOOLS),
]
WATCHED = "features://watched"
SECRET = "features://secret"


def apply_playbook(stack: Stack) -> None:
    doc = {
        "name": PLAYBOOK,
        "description": "Read some resources and prompts and call some tools over MCP.",
        "actions": ACTIONS,
        "resources": RESOURCES,
        "destinations": [f"conformance.{TD}", f"features.{TD}"],
        "data_ceiling": "confidential",
        "max_ttl": "15m",
        "max_calls": 50,
        "openers": {"spiffe_ids": [f"spiffe://{TD}/agents/*"]},
    }
    stack.deployment.playbooks.apply(parse_playbook(doc, "test"), ADMIN)


@contextmanager
def open_task(stack: Stack, gateway: GatewayServer) -> Iterator[Task]:
    """A task of the playbook asking for all of :data:`ACTIONS`, its own agent's;
    completed (and the agent closed) on leaving."""
    with (
        stack.agent() as agent,
        agent.open_task(
            playbook=PLAYBOOK,
            intent="Use resources, prompts and tools through the MCP gateway",
            authorization_details=[{"type": "zerolane_task", "actions": ACTIONS}],
            audience=[gateway.url],
        ) as task,
    ):
        yield task


@contextmanager
def gateway_to_all(stack: Stack, upstreams: dict[str, tuple[str, str]]) -> Iterator[GatewayServer]:
    """A gateway (on the stack's home) in front of ``upstreams`` (name: URL and the
    prefix of its tools), in order."""
    port = free_port()
    doc = {
        "listen": {"host": "127.0.0.1", "port": port},
        "public_url": f"http://127.0.0.1:{port}",
        "authorization_servers": [stack.cp_url],
        "servers": [
            {"name": name, "url": url, "destination": f"{name}.{TD}", "prefix": prefix}
            for name, (url, prefix) in upstreams.items()
        ],
    }
    with GatewayServer(parse_gateway_config(doc), enforcement_of(stack.deployment)) as gateway:
        yield gateway


class BodyRecorder:
    """An ASGI wrapper noting each JSON-RPC message POSTed to the app it wraps."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.messages: list[dict[str, Any]] = []

    def methods(self, method: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("method") == method]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def recording() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    found = json.loads(b"".join(chunks) or b"null")
                    if isinstance(found, dict):
                        self.messages.append(found)
            return message

        await self.app(scope, recording, send)


@dataclass
class Noted:
    """What the features server saw."""

    subscribed: list[str] = field(default_factory=list)
    read: list[str] = field(default_factory=list)
    slow_started: int = 0
    slow_cancelled: int = 0


class FeaturesServer:
    """The ``features`` upstream: a Python SDK server on a loopback port."""

    def __init__(self) -> None:
        import uvicorn

        self.noted = Noted()
        server: Server[Any] = Server(
            "features",
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            on_list_resources=self._list_resources,
            on_read_resource=self._read_resource,
            on_subscribe_resource=self._subscribe,
        )
        self.recorder = BodyRecorder(server.streamable_http_app())
        port = free_port()
        self.url = f"http://127.0.0.1:{port}/mcp"
        config = uvicorn.Config(self.recorder, host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    async def _list_tools(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        schema: dict[str, Any] = {"type": "object", "properties": {}}
        tools = [types.Tool(name=name, input_schema=schema) for name in FEATURES_TOOLS]
        return types.ListToolsResult(tools=tools)

    async def _call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        if params.name == "ask_model":
            return await self._ask_model(ctx, str((params.arguments or {}).get("question")))
        self.noted.slow_started += 1
        try:
            await anyio.sleep(300)
        except anyio.get_cancelled_exc_class():
            self.noted.slow_cancelled += 1
            raise
        return types.CallToolResult(content=[types.TextContent(text="finished")])

    async def _ask_model(
        self, ctx: ServerRequestContext[Any], question: str
    ) -> types.CallToolResult:
        """Sampling, then elicitation, both in this call's stream."""
        related = ServerMessageMetadata(related_request_id=ctx.request_id)
        message = types.SamplingMessage(role="user", content=types.TextContent(text=question))
        sampling = types.CreateMessageRequest(
            params=types.CreateMessageRequestParams(messages=[message], max_tokens=10)
        )
        schema = {"type": "object", "properties": {"send": {"type": "boolean"}}}
        elicitation = types.ElicitRequest(
            params=types.ElicitRequestFormParams(message="Send it?", requested_schema=schema)
        )
        try:
            sampled = await ctx.session.send_request(
                sampling, types.CreateMessageResult, metadata=related
            )
            elicited = await ctx.session.send_request(
                elicitation, types.ElicitResult, metadata=related
            )
        except MCPError as err:
            text = f"refused: {err.error.message}"
            return types.CallToolResult(content=[types.TextContent(text=text)], is_error=True)
        answer = sampled.content
        said = answer.text if isinstance(answer, types.TextContent) else "?"
        text = f"model: {said}; user: {elicited.action} {json.dumps(elicited.content)}"
        return types.CallToolResult(content=[types.TextContent(text=text)])

    async def _list_resources(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        listed = [types.Resource(name=uri.split("/")[-1], uri=uri) for uri in (WATCHED, SECRET)]
        return types.ListResourcesResult(resources=listed)

    async def _read_resource(
        self, ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        self.noted.read.append(str(params.uri))
        content = types.TextResourceContents(uri=str(params.uri), text=f"{params.uri}: v1")
        return types.ReadResourceResult(contents=[content])

    async def _subscribe(
        self, ctx: ServerRequestContext[Any], params: types.SubscribeRequestParams
    ) -> types.EmptyResult:
        self.noted.subscribed.append(str(params.uri))
        # on this session's own stream: the secret first, so that when the watched
        # one reaches the agent, the secret's would have come before it if relayed
        await ctx.session.send_resource_updated(SECRET)
        await ctx.session.send_resource_updated(str(params.uri))
        return types.EmptyResult()

    def __enter__(self) -> FeaturesServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the features MCP server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@dataclass
class Agent:
    """An agent's MCP client session and what reached it besides answers."""

    session: ClientSession
    session_id: str
    logs: list[types.LoggingMessageNotificationParams]
    notifications: list[types.ServerNotification]

    def updated(self) -> list[str]:
        return [
            str(n.params.uri)
            for n in self.notifications
            if isinstance(n, types.ResourceUpdatedNotification)
        ]

    def log_texts(self) -> list[str]:
        return [str(params.data) for params in self.logs]


@asynccontextmanager
async def agent_session(
    url: str,
    task: Task,
    *,
    sampling: SamplingFnT | None = None,
    elicitation: ElicitationFnT | None = None,
) -> AsyncIterator[Agent]:
    """An initialized MCP client session through the gateway as ``task``, declaring
    sampling and elicitation only when given their callbacks."""
    logs: list[types.LoggingMessageNotificationParams] = []
    notifications: list[types.ServerNotification] = []
    session_ids: list[str] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        logs.append(params)

    async def on_message(message: types.ServerNotification | Exception) -> None:
        if not isinstance(message, Exception):
            notifications.append(message)

    async def on_response(response: httpx2.Response) -> None:
        found = response.headers.get("mcp-session-id")
        if found and found not in session_ids:
            session_ids.append(found)

    logging_callback: LoggingFnT = on_log
    message_handler: MessageHandlerFnT = on_message
    hooks = {"response": [on_response]}
    async with (
        httpx2.AsyncClient(auth=task.mcp_auth(), timeout=30, event_hooks=hooks) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(
            read,
            write,
            sampling_callback=sampling,
            elicitation_callback=elicitation,
            logging_callback=logging_callback,
            message_handler=message_handler,
        ) as session,
    ):
        await session.initialize()
        assert len(session_ids) == 1, session_ids
        yield Agent(session, session_ids[0], logs, notifications)


async def eventually(check: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait until ``check()`` is true, failing after ``seconds``: polled, as what it
    checks may change in another thread (an upstream's)."""
    with anyio.fail_after(seconds):
        while not check():  # noqa: ASYNC110 - no event to wait on across threads
            await anyio.sleep(0.02)


@dataclass
class Features:
    """The upstreams and the gateway in front of them, on the stack's home."""

    stack: Stack
    gateway: GatewayServer
    upstream: FeaturesServer

    @property
    def url(self) -> str:
        return self.gateway.url

    def task(self) -> AbstractContextManager[Task]:
        """A task of the playbook (its own agent's), completed on leaving."""
        return open_task(self.stack, self.gateway)

    def decisions(self, task: Task) -> list[dict[str, Any]]:
        """The task's decisions, in order."""
        return [e for e in self.stack.events("decision") if e["subject"] == task.task_id]


@contextmanager
def running(stack: Stack, workdir: Path) -> Iterator[Features]:
    """Both upstreams and a gateway in front of them (the features one's tools prefixed
    ``features_``), the playbook applied."""
    assert CONFORMANCE.exists(), f"the conformance server is missing: {CONFORMANCE}"
    apply_playbook(stack)
    with (
        conformance_server(workdir) as conformance_url,
        FeaturesServer() as upstream,
        gateway_to_all(
            stack, {"conformance": (conformance_url, ""), "features": (upstream.url, "features_")}
        ) as gateway,
    ):
        yield Features(stack, gateway, upstream)


def refusal(outcome: object, reason: str = "scope.resource") -> MCPError:
    assert isinstance(outcome, MCPError), outcome
    assert outcome.code == FORBIDDEN, outcome
    assert outcome.data["reasons"] == [reason], outcome.data
    return outcome


async def attempt(request: Any) -> Any:
    """The awaited request's result, or the MCPError it was answered with."""
    try:
        return await request
    except MCPError as err:
        return err


def text_of(result: types.CallToolResult | types.GetPromptResult) -> str:
    if isinstance(result, types.GetPromptResult):
        content: Any = result.messages[0].content
    else:
        content = result.content[0]
    assert isinstance(content, types.TextContent), content
    return content.text


async def set_level(agent: Agent, level: types.LoggingLevel) -> None:
    request = types.SetLevelRequest(params=types.SetLevelRequestParams(level=level))
    await agent.session.send_request(request, types.EmptyResult)


async def subscribe(agent: Agent, uri: str) -> Any:
    request = types.SubscribeRequest(params=types.SubscribeRequestParams(uri=uri))
    return await attempt(agent.session.send_request(request, types.EmptyResult))
