"""The asyncio agent client: the protocol of :mod:`zerolane.sdk.protocol` sent with an
``httpx.AsyncClient`` (the same shape as :mod:`zerolane.sdk.client`)."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Generator, Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Unpack

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from zerolane.sdk.common import (
    APPROVAL_SETTLED,
    DEFAULT_TIMEOUT,
    DecisionResult,
    TaskGrant,
    approval_required,
    check,
)
from zerolane.sdk.protocol import (
    AgentCore,
    Call,
    Delegation,
    Narrowing,
    RequestFields,
    TaskCore,
    TaskOptions,
    decided,
    exchanged,
    opened,
)

if TYPE_CHECKING:
    from zerolane.gateway.inproc import InprocDecider, TaskCredentials


class AsyncTask(TaskCore["AsyncAgent"]):
    """An open task: its token, and requests made with fresh DPoP proofs (or, for a
    certificate-bound token, over the agent's mutual-TLS client, with no proof).

    ``async with`` completes it on exit, exceptions included.
    """

    @property
    def http(self) -> httpx.AsyncClient:
        """The client this task's requests go through (the mutual-TLS one when the
        token is bound to the agent's certificate)."""
        return self._agent.mtls_http if self.grant.certificate_bound else self._agent.http

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """As :meth:`zerolane.sdk.Task.request` (raises ``ApprovalRequired``)."""
        headers = {**kwargs.pop("headers", {}), **self.headers(method, url)}
        response = await self.http.request(method, url, headers=headers, **kwargs)
        asked = approval_required(response)
        if asked is not None:
            raise asked
        return response

    async def approval(self, approval_id: str) -> dict[str, Any]:
        """As :meth:`zerolane.sdk.Task.approval`."""
        url = self._agent.url(f"/v1/approvals/{approval_id}")
        return check(await self.http.get(url, headers=self.headers("GET", url)))

    async def wait_for_approval(
        self,
        approval_id: str,
        timeout: float = 300.0,  # noqa: ASYNC109 - the same call as the sync Task's
        interval: float = 2.0,
    ) -> str:
        """As :meth:`zerolane.sdk.Task.wait_for_approval`."""
        deadline = time.monotonic() + timeout
        while True:
            status = str((await self.approval(approval_id))["status"])
            if status in APPROVAL_SETTLED:
                return status
            if time.monotonic() + interval > deadline:
                raise TimeoutError(f"approval {approval_id} still pending after {timeout}s")
            await asyncio.sleep(interval)

    async def decide(
        self, method: str, url: str, **fields: Unpack[RequestFields]
    ) -> DecisionResult:
        """As :meth:`zerolane.sdk.Task.decide`."""
        return decided(await self._agent.send(self.decide_call(method, url, fields)))

    def guard_context(
        self, *, decider: InprocDecider | None = None
    ) -> AbstractContextManager[TaskCredentials]:
        """``with task.guard_context():`` guarded tool functions run under this task;
        ``decider`` defaults to the control plane (:func:`zerolane.sdk.guard.guard_context`)."""
        from zerolane.sdk.guard import guard_context  # that module imports this one

        return guard_context(self, decider=decider)

    async def delegate(self, *, delegate_svid: str, **options: Unpack[Delegation]) -> TaskGrant:
        """Hand a narrower child of this task to another workload, as
        :meth:`zerolane.sdk.Task.delegate`; the grant returned is the delegate's."""
        return exchanged(await self._agent.send(self.delegate_call(delegate_svid, options)))

    async def complete(self) -> None:
        """End the task; its token is refused everywhere from the next request on."""
        call = self.complete_call()
        if call is not None:
            self.completed_by(await self._agent.send(call))

    async def __aenter__(self) -> AsyncTask:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.complete()
            return
        try:
            await self.complete()
        except Exception as complete_error:  # keep the original exception primary
            self.note_complete_failure(exc, complete_error)


class _OpenTask:
    """Awaitable and async context manager: ``async with agent.task(...) as t``."""

    def __init__(self, agent: AsyncAgent, playbook: str, intent: str, options: TaskOptions) -> None:
        self._agent = agent
        self._opening = (playbook, intent, options)
        self._task: AsyncTask | None = None

    async def _open(self) -> AsyncTask:
        return await self._agent.open_task(
            playbook=self._opening[0], intent=self._opening[1], **self._opening[2]
        )

    def __await__(self) -> Generator[Any, None, AsyncTask]:
        return self._open().__await__()

    async def __aenter__(self) -> AsyncTask:
        self._task = await self._open()
        return self._task

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            await self._task.__aexit__(exc_type, exc, tb)


class AsyncAgent(AgentCore):
    """A workload's asyncio client: its in-memory key, its SVID, and its tasks."""

    def __init__(
        self,
        base_url: str,
        *,
        key: ec.EllipticCurvePrivateKey | None = None,
        http: httpx.AsyncClient | None = None,
        enforcement_point: str | None = None,
    ) -> None:
        """``enforcement_point``: the credential (``zlep_...``) with which
        :meth:`AsyncTask.decide` and the in-process guard ask ``POST /v1/decide``: only
        a registered enforcement point may ask (``zerolane enforcement-point add``)."""
        super().__init__(base_url, key=key, enforcement_point=enforcement_point)
        self.http = http or httpx.AsyncClient(timeout=DEFAULT_TIMEOUT)
        self._mtls: httpx.AsyncClient | None = None

    async def send(self, call: Call) -> httpx.Response:
        """Make one call of the protocol, on the client it names."""
        client = self.mtls_http if call.mtls else self.http
        return await client.post(
            call.url, headers=call.headers, json=call.json, content=call.content
        )

    async def enable_mtls(
        self,
        *,
        verify: bool | str | ssl.SSLContext = True,
        http: httpx.AsyncClient | None = None,
    ) -> httpx.AsyncClient:
        """As :meth:`zerolane.sdk.Agent.enable_mtls`: make (or take) the mutual-TLS
        client presenting this agent's X.509-SVID; a client made before is closed."""
        if http is None:
            http = httpx.AsyncClient(timeout=DEFAULT_TIMEOUT, verify=self.tls_context(verify))
        if self._mtls is not None:
            await self._mtls.aclose()
        self._mtls = http
        return http

    @property
    def mtls_http(self) -> httpx.AsyncClient:
        if self._mtls is None:
            raise RuntimeError("call enable_mtls() first: no mutual-TLS client")
        return self._mtls

    @classmethod
    async def attest(
        cls,
        base_url: str,
        *,
        join_token: str,
        audience: Sequence[str] | None = None,
        ttl: int | None = None,
        spiffe_id: str | None = None,
        http: httpx.AsyncClient | None = None,
        x509: bool = False,
        enforcement_point: str | None = None,
    ) -> AsyncAgent:
        """As :meth:`zerolane.sdk.Agent.attest`, closing the client it made if it fails."""
        agent = cls(base_url, http=http, enforcement_point=enforcement_point)
        call = agent.attest_call(join_token, audience, ttl, spiffe_id, x509)
        try:
            agent.attested(await agent.send(call))
        except BaseException:
            if http is None:  # the caller never sees this agent: close the client we made
                await agent.aclose()
            raise
        return agent

    async def open_task(
        self, *, playbook: str, intent: str, **options: Unpack[TaskOptions]
    ) -> AsyncTask:
        """As :meth:`zerolane.sdk.Agent.open_task`; prefer :meth:`task`."""
        return AsyncTask(self, opened(await self.send(self.open_call(playbook, intent, options))))

    def task(self, *, playbook: str, intent: str, **options: Unpack[TaskOptions]) -> _OpenTask:
        """``async with agent.task(playbook=..., intent=...) as task:`` completes on exit
        (``await agent.task(...)`` opens it, as :meth:`open_task`)."""
        return _OpenTask(self, playbook, intent, options)

    def adopt(self, grant: TaskGrant) -> AsyncTask:
        """A task another workload delegated to this agent (:meth:`AsyncTask.delegate`):
        its token is bound to this agent's key, so only this agent can use it."""
        return AsyncTask(self, grant)

    async def open_task_for_user(
        self, *, id_token: str, playbook: str, intent: str, **options: Unpack[Narrowing]
    ) -> AsyncTask:
        """As :meth:`zerolane.sdk.Agent.open_task_for_user`."""
        call = self.for_user_call(id_token, playbook, intent, options)
        return AsyncTask(self, exchanged(await self.send(call)))

    async def aclose(self) -> None:
        await self.http.aclose()
        if self._mtls is not None:
            await self._mtls.aclose()

    async def __aenter__(self) -> AsyncAgent:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()
