"""The asyncio agent client (same shape as :mod:`zerolane.sdk.client`)."""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from zerolane.sdk.common import (
    DEFAULT_TIMEOUT,
    DecisionResult,
    Svid,
    TaskGrant,
    X509Svid,
    attest_body,
    bearer_headers,
    check,
    client_tls_context,
    csr_pem,
    decide_body,
    decision_of,
    dpop_headers,
    exchange_request,
    exchanged_grant_of,
    grant_of,
    new_key,
    open_body,
    svid_of,
    x509_of,
)
from zerolane.sdk.mcp_auth import McpAuth
from zerolane.tokens.rfc8693 import ACCESS_TOKEN_TYPE, ID_TOKEN_TYPE

if TYPE_CHECKING:
    from zerolane.gateway.inproc import InprocDecider, TaskCredentials


class AsyncTask:
    """An open task: its token, and requests made with fresh DPoP proofs (or, for a
    certificate-bound token, over the agent's mutual-TLS client, with no proof).

    ``async with`` completes it on exit, exceptions included.
    """

    def __init__(self, agent: AsyncAgent, grant: TaskGrant) -> None:
        self._agent = agent
        self.grant = grant
        self.completed = False

    @property
    def task_id(self) -> str:
        return self.grant.task_id

    @property
    def token(self) -> str:
        return self.grant.token

    def headers(self, method: str, url: str) -> dict[str, str]:
        """Headers for one request to an enforcement point (token plus a fresh proof;
        ``Authorization: Bearer`` alone for a certificate-bound token)."""
        if self.grant.certificate_bound:
            return bearer_headers(self.token)
        return dpop_headers(self._agent.key, self.token, method, url)

    @property
    def http(self) -> httpx.AsyncClient:
        """The client this task's requests go through (the mutual-TLS one when the
        token is bound to the agent's certificate)."""
        return self._agent.mtls_http if self.grant.certificate_bound else self._agent.http

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send a request through an enforcement point with this task's credentials."""
        headers = {**kwargs.pop("headers", {}), **self.headers(method, url)}
        return await self.http.request(method, url, headers=headers, **kwargs)

    async def decide(
        self,
        method: str,
        url: str,
        *,
        action: str | None = None,
        resource: str | None = None,
        destination: str | None = None,
        sensitivity: str | None = None,
        audience: str | None = None,
    ) -> DecisionResult:
        mapping = {
            "action": action,
            "resource": resource,
            "destination": destination,
            "sensitivity": sensitivity,
        }
        body = decide_body(
            self._agent.key,
            self.token,
            method,
            url,
            mapping,
            audience,
            proof=not self.grant.certificate_bound,
        )
        response = await self.http.post(
            self._agent.url("/v1/decide"),
            json=body,
            headers=self._agent.decider_headers(),
        )
        return decision_of(check(response))

    def mcp_auth(self) -> McpAuth:
        """An ``httpx2.Auth`` signing each request of an MCP client with this task's token
        and a fresh DPoP proof: ``httpx2.AsyncClient(auth=task.mcp_auth())``, passed to
        ``streamable_http_client(url, http_client=...)``."""
        return McpAuth(self.headers)

    def guard_context(
        self, *, decider: InprocDecider | None = None
    ) -> AbstractContextManager[TaskCredentials]:
        """``with task.guard_context():`` guarded tool functions run under this task;
        ``decider`` defaults to the control plane (:func:`zerolane.sdk.guard.guard_context`)."""
        from zerolane.sdk.guard import guard_context  # that module imports this one

        return guard_context(self, decider=decider)

    async def delegate(
        self,
        *,
        delegate_svid: str,
        authorization_details: Sequence[Mapping[str, Any]] | None = None,
        ttl: int | None = None,
        max_calls: int | None = None,
        audience: Sequence[str] | None = None,
        intent: str | None = None,
    ) -> TaskGrant:
        """Hand a narrower child of this task to another workload (RFC 8693 token
        exchange at ``POST /v1/token``), proving this task's key.

        ``delegate_svid`` is the delegate's key-bound JWT-SVID. The child is at most
        this task's scope, window and remaining calls (its ``max_calls`` are carved out
        of this task's; default: all of them). The grant returned is bound to the
        delegate's key: give it to the delegate, which uses it with
        ``agent.adopt(grant)``; this agent cannot use it. A certificate-bound task
        proves itself by its certificate instead (the call goes over the mutual-TLS
        client, with no proof).
        """
        url = self._agent.url("/v1/token")
        form, headers = exchange_request(
            url,
            self._agent.key,
            subject_token=self.token,
            subject_token_type=ACCESS_TOKEN_TYPE,
            actor_token=delegate_svid,
            proven_token=None if self.grant.certificate_bound else self.token,
            authorization_details=authorization_details,
            audience=audience,
            ttl=ttl,
            max_calls=max_calls,
            intent=intent,
        )
        response = await self.http.post(url, content=form, headers=headers)
        return exchanged_grant_of(check(response))

    async def complete(self) -> None:
        """End the task; its token is refused everywhere from the next request on."""
        if self.completed:
            return
        url = self._agent.url(f"/v1/tasks/{self.task_id}/complete")
        check(await self.http.post(url, headers=self.headers("POST", url)))
        self.completed = True

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
            exc.add_note(f"zerolane: completing task {self.task_id} also failed: {complete_error}")


class _OpenTask:
    """Awaitable and async context manager: ``async with agent.task(...) as t``."""

    def __init__(self, agent: AsyncAgent, kwargs: dict[str, Any]) -> None:
        self._agent = agent
        self._kwargs = kwargs
        self._task: AsyncTask | None = None

    def __await__(self) -> Any:
        return self._agent.open_task(**self._kwargs).__await__()

    async def __aenter__(self) -> AsyncTask:
        self._task = await self._agent.open_task(**self._kwargs)
        return self._task

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            await self._task.__aexit__(exc_type, exc, tb)


class AsyncAgent:
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
        :meth:`Task.decide` and the in-process guard ask ``POST /v1/decide``: only a
        registered enforcement point may ask (``zerolane enforcement-point add``)."""
        self.enforcement_point = enforcement_point
        self.base_url = base_url.rstrip("/")
        self.key = key or new_key()
        self.http = http or httpx.AsyncClient(timeout=DEFAULT_TIMEOUT)
        self.svid: Svid | None = None
        #: the X.509-SVID (``attest(..., x509=True)``) and its mutual-TLS client
        self.x509: X509Svid | None = None
        self._mtls: httpx.AsyncClient | None = None

    def url(self, path: str) -> str:
        return self.base_url + path

    def decider_headers(self) -> dict[str, str]:
        """How this agent's enforcement point asks ``POST /v1/decide`` (its credential)."""
        return bearer_headers(self.enforcement_point) if self.enforcement_point else {}

    async def enable_mtls(
        self,
        *,
        verify: bool | str | ssl.SSLContext = True,
        http: httpx.AsyncClient | None = None,
    ) -> httpx.AsyncClient:
        """Make the mutual-TLS client that presents this agent's X.509-SVID (attest
        with ``x509=True`` first); tasks opened with ``binding="mtls"`` use it.

        ``verify`` checks the server (a CA file, an ``ssl.SSLContext``, True for the
        system's CAs); ``http``: bring your own client instead (already presenting it).
        A client made before is closed.
        """
        if http is None:
            if self.x509 is None:
                raise RuntimeError("attest with x509=True first: no X.509-SVID to present")
            context = client_tls_context(self.key, self.x509, verify)
            http = httpx.AsyncClient(timeout=DEFAULT_TIMEOUT, verify=context)
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
        """Make a key, attest with a join token, and keep the key-bound SVID; with
        ``x509`` also get an X.509-SVID for the same key (then :meth:`enable_mtls`)."""
        agent = cls(base_url, http=http, enforcement_point=enforcement_point)
        body = attest_body(join_token, agent.key, audience, ttl, spiffe_id)
        if x509:
            body["csr"] = csr_pem(agent.key)
        try:
            answer = check(await agent.http.post(agent.url("/v1/attest"), json=body))
            agent.svid = svid_of(answer)
            agent.x509 = x509_of(answer)
        except BaseException:
            if http is None:  # the caller never sees this agent: close the client we made
                await agent.aclose()
            raise
        return agent

    @property
    def spiffe_id(self) -> str:
        if self.svid is None:
            raise RuntimeError("attest first")
        return self.svid.spiffe_id

    async def open_task(
        self,
        *,
        playbook: str,
        intent: str,
        authorization_details: Sequence[Mapping[str, Any]] | None = None,
        ttl: int | None = None,
        max_calls: int | None = None,
        on_behalf_of: str | None = None,
        audience: Sequence[str] | None = None,
        binding: Literal["dpop", "mtls"] = "dpop",
    ) -> AsyncTask:
        """Open a task (SVID plus DPoP proof); prefer :meth:`task` to complete it surely.

        ``binding="mtls"``: open it over the mutual-TLS client (:meth:`enable_mtls`),
        authenticated by the X.509-SVID; the token is bound to that certificate (RFC
        8705) and the task's requests go over that client with no DPoP proof.
        """
        url = self.url("/v1/tasks")
        body = open_body(
            playbook, intent, authorization_details, ttl, max_calls, on_behalf_of, audience
        )
        if binding == "mtls":
            response = await self.mtls_http.post(url, json=body)
            return AsyncTask(self, grant_of(check(response)))
        if self.svid is None:
            raise RuntimeError("attest first: a task is opened with the agent's SVID")
        headers = dpop_headers(self.key, self.svid.token, "POST", url)
        response = await self.http.post(url, json=body, headers=headers)
        return AsyncTask(self, grant_of(check(response)))

    def task(self, **kwargs: Any) -> _OpenTask:
        """``async with agent.task(playbook=..., intent=...) as task:`` completes on exit."""
        return _OpenTask(self, kwargs)

    def adopt(self, grant: TaskGrant) -> AsyncTask:
        """A task another workload delegated to this agent (:meth:`AsyncTask.delegate`):
        its token is bound to this agent's key, so only this agent can use it."""
        return AsyncTask(self, grant)

    async def open_task_for_user(
        self,
        *,
        id_token: str,
        playbook: str,
        intent: str,
        authorization_details: Sequence[Mapping[str, Any]] | None = None,
        ttl: int | None = None,
        max_calls: int | None = None,
        audience: Sequence[str] | None = None,
    ) -> AsyncTask:
        """Open a task acting for the person of ``id_token`` (an OIDC ID token from an
        issuer the control plane trusts), by RFC 8693 token exchange; the task records
        the verified person and policies see it as ``context.task.user``."""
        if self.svid is None:
            raise RuntimeError("attest first: a task is opened with the agent's SVID")
        url = self.url("/v1/token")
        form, headers = exchange_request(
            url,
            self.key,
            subject_token=id_token,
            subject_token_type=ID_TOKEN_TYPE,
            actor_token=self.svid.token,
            proven_token=self.svid.token,
            authorization_details=authorization_details,
            audience=audience,
            ttl=ttl,
            max_calls=max_calls,
            intent=intent,
            playbook=playbook,
        )
        response = await self.http.post(url, content=form, headers=headers)
        return AsyncTask(self, exchanged_grant_of(check(response)))

    async def aclose(self) -> None:
        await self.http.aclose()
        if self._mtls is not None:
            await self._mtls.aclose()

    async def __aenter__(self) -> AsyncAgent:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()
