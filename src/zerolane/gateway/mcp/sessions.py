"""The agent sessions a gateway holds: opened on ``initialize``, ended by the agent, by
their task's end, or by idleness.

A session id is 32 random bytes (URL-safe), known only to the agent that opened it,
and bound to its task: a request for it under another task is answered as if it did
not exist. Admission is bounded (all sessions, and per task). Every
:data:`SWEEP_SECONDS`, sessions whose task is no longer live (completed, revoked,
expired) or that were idle for ``idle_seconds`` are ended, and with them their
upstream sessions. Once a task's last session has ended, the upstream tokens held for
it are dropped (:meth:`UpstreamCredentials.forget`).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Mapping

import aiohttp
import anyio
from anyio.abc import TaskGroup, TaskStatus

from zerolane.errors import Unavailable, ZerolaneError
from zerolane.gateway.mcp.config import UpstreamConfig
from zerolane.gateway.mcp.core import Enforcement
from zerolane.gateway.mcp.credentials import UpstreamCredentials
from zerolane.gateway.mcp.mapping import ToolRoute
from zerolane.gateway.mcp.session import AgentSession, ClientFacts, MayRead
from zerolane.tokens.rfc9068 import TaskTokenClaims

log = logging.getLogger(__name__)

MAX_SESSIONS = 10_000
MAX_PER_TASK = 64
IDLE_SECONDS = 30 * 60.0
SWEEP_SECONDS = 5.0


def reachable(
    servers: tuple[UpstreamConfig, ...], claims: TaskTokenClaims
) -> tuple[UpstreamConfig, ...]:
    """The servers a task's scope names an action of (``mcp:<server>/...``): the only
    ones its sessions open upstream sessions to, so nothing of the agent (its
    capabilities, log level, roots) reaches a server the task can do nothing on."""
    actions = {
        action
        for detail in claims.authorization_details
        for action in (detail.get("actions") or ())
        if isinstance(action, str)
    }
    return tuple(s for s in servers if any(a.startswith(f"mcp:{s.name}/") for a in actions))


class Sessions:
    """The live agent sessions by id."""

    def __init__(
        self,
        enforcement: Enforcement,
        servers: tuple[UpstreamConfig, ...],
        *,
        may_read: MayRead,
        connect_seconds: float,
        catalog: Callable[[], Mapping[str, ToolRoute]] = dict,
        max_sessions: int = MAX_SESSIONS,
        max_per_task: int = MAX_PER_TASK,
        idle_seconds: float = IDLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        credentials: UpstreamCredentials | None = None,
    ) -> None:
        self._core = enforcement
        self._servers = servers
        self._may_read = may_read
        self._connect_seconds = connect_seconds
        self._catalog = catalog
        self._max = max_sessions
        self._max_per_task = max_per_task
        self._idle = idle_seconds
        self._clock = clock
        self._credentials = credentials
        self._sessions: dict[str, AgentSession] = {}
        self._group: TaskGroup | None = None
        self._stopping = anyio.Event()
        #: set once every session has ended after :meth:`stop`
        self.stopped = anyio.Event()
        self.pools: dict[str, aiohttp.ClientSession] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Hold the sessions and sweep them until :meth:`stop`; then every session is
        ended cleanly (its upstream sessions closed) before this returns."""
        async with anyio.create_task_group() as group:
            self._group = group
            task_status.started()
            while not self._stopping.is_set():
                with anyio.move_on_after(SWEEP_SECONDS):
                    await self._stopping.wait()
                if not self._stopping.is_set():
                    await self.sweep()
            for session in list(self._sessions.values()):
                self.end(session)
        self._group = None
        self.stopped.set()

    def stop(self) -> None:
        """End every session and stop admitting new ones."""
        self._stopping.set()

    async def open(self, claims: TaskTokenClaims, client: ClientFacts) -> AgentSession:
        """A new session for the task of ``claims``, its upstream sessions opened;
        :class:`Unavailable` (``mcp.sessions``) past a bound."""
        if self._group is None or self._stopping.is_set():
            raise Unavailable("mcp.sessions", "the gateway is not serving sessions")
        if len(self._sessions) >= self._max:
            raise Unavailable("mcp.sessions", f"{self._max} MCP sessions are open")
        mine = sum(1 for s in self._sessions.values() if s.task_id == claims.task_id)
        if mine >= self._max_per_task:
            raise Unavailable("mcp.sessions", f"the task has {mine} MCP sessions open")
        session = AgentSession(
            secrets.token_urlsafe(32),
            claims,
            client,
            servers=reachable(self._servers, claims),
            pools=self.pools,
            may_read=self._may_read,
            connect_seconds=self._connect_seconds,
            catalog=self._catalog,
            credentials=self._credentials,
        )
        self._sessions[session.id] = session
        await self._group.start(session.run)
        await session.open_links()
        return session

    def get(self, session_id: str | None, task_id: str) -> AgentSession | None:
        """The live session ``session_id`` of task ``task_id`` (None: no such session
        for this task, answered as not found)."""
        if session_id is None:
            return None
        session = self._sessions.get(session_id)
        if session is None or session.closed or session.task_id != task_id:
            return None
        return session

    def peek(self, session_id: str) -> AgentSession | None:
        """The live session ``session_id``, whatever its task (check it before use)."""
        session = self._sessions.get(session_id)
        return None if session is None or session.closed else session

    def end(self, session: AgentSession) -> None:
        if self._sessions.pop(session.id, None) is None:
            session.close()
            return
        session.close()
        task = session.task_id
        last = not any(other.task_id == task for other in self._sessions.values())
        if last and self._credentials is not None and self._group is not None:
            self._group.start_soon(self._credentials.forget, task)

    async def sweep(self) -> None:
        """End the sessions of tasks no longer live, and idle sessions."""
        now = self._clock()
        for session in list(self._sessions.values()):
            if now - session.last_used > self._idle:
                log.info("MCP session %s idle: ended", session.id[:8])
                self.end(session)
                continue
            if not await anyio.to_thread.run_sync(self._live, session.claims):
                log.info("MCP session %s: its task ended, so does the session", session.id[:8])
                self.end(session)

    def _live(self, claims: TaskTokenClaims) -> bool:
        try:
            self._core.lifecycle.live(claims, now=self._core.clock.now())
        except ZerolaneError:
            return False
        return True
