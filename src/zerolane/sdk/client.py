"""The synchronous agent client: the protocol of :mod:`zerolane.sdk.protocol` sent with
an ``httpx.Client``."""

from __future__ import annotations

import ssl
import time
from collections.abc import Sequence
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


class Task(TaskCore["Agent"]):
    """An open task: its token, and requests made with fresh DPoP proofs (or, for a
    certificate-bound token, over the agent's mutual-TLS client, with no proof).

    As a context manager it completes the task on exit, exceptions included.
    """

    @property
    def http(self) -> httpx.Client:
        """The client this task's requests go through (the mutual-TLS one when the
        token is bound to the agent's certificate)."""
        return self._agent.mtls_http if self.grant.certificate_bound else self._agent.http

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send a request through an enforcement point with this task's credentials.
        Raises :class:`~zerolane.sdk.ApprovalRequired` when a policy asks a person to
        approve it (403 ``approval.required``); any other answer is returned."""
        headers = {**kwargs.pop("headers", {}), **self.headers(method, url)}
        response = self.http.request(method, url, headers=headers, **kwargs)
        asked = approval_required(response)
        if asked is not None:
            raise asked
        return response

    def approval(self, approval_id: str) -> dict[str, Any]:
        """One of this task's approvals, as the control plane shows it to the task
        (``GET /v1/approvals/{id}``): its ``status`` (pending, approved, denied, used,
        expired), the request it is bound to, who decided it."""
        url = self._agent.url(f"/v1/approvals/{approval_id}")
        return check(self.http.get(url, headers=self.headers("GET", url)))

    def wait_for_approval(
        self, approval_id: str, timeout: float = 300.0, interval: float = 2.0
    ) -> str:
        """Poll the approval until a person decided it (or it expired): its status,
        ``approved`` (send the identical request again: it is allowed once),
        ``denied`` or ``expired``. Raises ``TimeoutError`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            status = str(self.approval(approval_id)["status"])
            if status in APPROVAL_SETTLED:
                return status
            if time.monotonic() + interval > deadline:
                raise TimeoutError(f"approval {approval_id} still pending after {timeout}s")
            time.sleep(interval)

    def decide(self, method: str, url: str, **fields: Unpack[RequestFields]) -> DecisionResult:
        """Ask the control plane to decide a request of this task (spends a call if
        allowed), as the enforcement point whose credential the agent was given: an
        enforcement point asks this, for a request to one of its own URLs; an agent
        sends its requests through one (a gateway, forward-auth, the guard).

        ``fields``: the ``action``, ``resource``, ``destination`` and ``sensitivity``
        the enforcement point mapped the request to, and the ``audience`` it decides for.
        """
        return decided(self._agent.send(self.decide_call(method, url, fields)))

    def guard_context(
        self, *, decider: InprocDecider | None = None
    ) -> AbstractContextManager[TaskCredentials]:
        """``with task.guard_context():`` guarded tool functions run under this task;
        ``decider`` defaults to the control plane (:func:`zerolane.sdk.guard.guard_context`)."""
        from zerolane.sdk.guard import guard_context  # that module imports this one

        return guard_context(self, decider=decider)

    def delegate(self, *, delegate_svid: str, **options: Unpack[Delegation]) -> TaskGrant:
        """Hand a narrower child of this task to another workload (RFC 8693 token
        exchange at ``POST /v1/token``), proving this task's key.

        ``delegate_svid`` is the delegate's key-bound JWT-SVID; ``options``:
        ``authorization_details``, ``ttl``, ``max_calls``, ``audience``, ``intent``.
        The child is at most this task's scope, window and remaining calls (its
        ``max_calls`` are carved out of this task's; default: all of them). The grant
        returned is bound to the delegate's key: give it to the delegate, which uses it
        with ``agent.adopt(grant)``; this agent cannot use it. A certificate-bound task
        proves itself by its certificate instead (the call goes over the mutual-TLS
        client, with no proof).
        """
        return exchanged(self._agent.send(self.delegate_call(delegate_svid, options)))

    def complete(self) -> None:
        """End the task; its token is refused everywhere from the next request on."""
        call = self.complete_call()
        if call is not None:
            self.completed_by(self._agent.send(call))

    def __enter__(self) -> Task:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.complete()
            return
        try:
            self.complete()
        except Exception as complete_error:  # keep the original exception primary
            self.note_complete_failure(exc, complete_error)


class Agent(AgentCore):
    """A workload's client: its in-memory key, its SVID, and its tasks."""

    def __init__(
        self,
        base_url: str,
        *,
        key: ec.EllipticCurvePrivateKey | None = None,
        http: httpx.Client | None = None,
        enforcement_point: str | None = None,
    ) -> None:
        """``enforcement_point``: the credential (``zlep_...``) with which
        :meth:`Task.decide` and the in-process guard ask ``POST /v1/decide``: only a
        registered enforcement point may ask (``zerolane enforcement-point add``)."""
        super().__init__(base_url, key=key, enforcement_point=enforcement_point)
        self.http = http or httpx.Client(timeout=DEFAULT_TIMEOUT)
        self._mtls: httpx.Client | None = None

    def send(self, call: Call) -> httpx.Response:
        """Make one call of the protocol, on the client it names."""
        client = self.mtls_http if call.mtls else self.http
        return client.post(call.url, headers=call.headers, json=call.json, content=call.content)

    def enable_mtls(
        self, *, verify: bool | str | ssl.SSLContext = True, http: httpx.Client | None = None
    ) -> httpx.Client:
        """Make the mutual-TLS client that presents this agent's X.509-SVID (attest
        with ``x509=True`` first); tasks opened with ``binding="mtls"`` use it.

        ``verify`` checks the server (a CA file, an ``ssl.SSLContext``, True for the
        system's CAs); ``http``: bring your own client instead (already presenting it).
        A client made before is closed.
        """
        if http is None:
            http = httpx.Client(timeout=DEFAULT_TIMEOUT, verify=self.tls_context(verify))
        if self._mtls is not None:
            self._mtls.close()
        self._mtls = http
        return http

    @property
    def mtls_http(self) -> httpx.Client:
        if self._mtls is None:
            raise RuntimeError("call enable_mtls() first: no mutual-TLS client")
        return self._mtls

    @classmethod
    def attest(
        cls,
        base_url: str,
        *,
        join_token: str,
        audience: Sequence[str] | None = None,
        ttl: int | None = None,
        spiffe_id: str | None = None,
        http: httpx.Client | None = None,
        x509: bool = False,
        enforcement_point: str | None = None,
    ) -> Agent:
        """Make a key, attest with a join token, and keep the key-bound SVID; with
        ``x509`` also get an X.509-SVID for the same key (then :meth:`enable_mtls`)."""
        agent = cls(base_url, http=http, enforcement_point=enforcement_point)
        call = agent.attest_call(join_token, audience, ttl, spiffe_id, x509)
        try:
            agent.attested(agent.send(call))
        except BaseException:
            if http is None:  # the caller never sees this agent: close the client we made
                agent.close()
            raise
        return agent

    def open_task(self, *, playbook: str, intent: str, **options: Unpack[TaskOptions]) -> Task:
        """Open a task (SVID plus DPoP proof); prefer :meth:`task` to complete it surely.

        ``options``: ``authorization_details`` (an RFC 9396 ``zerolane_task`` entry
        narrowing the playbook), ``ttl``, ``max_calls``, ``on_behalf_of``, ``audience``,
        ``binding``. ``binding="mtls"``: open it over the mutual-TLS client (:meth:`enable_mtls`),
        authenticated by the X.509-SVID; the token is bound to that certificate (RFC
        8705) and the task's requests go over that client with no DPoP proof.
        """
        return Task(self, opened(self.send(self.open_call(playbook, intent, options))))

    def task(self, *, playbook: str, intent: str, **options: Unpack[TaskOptions]) -> Task:
        """``with agent.task(playbook=..., intent=...) as task:`` completes on exit."""
        return self.open_task(playbook=playbook, intent=intent, **options)

    def adopt(self, grant: TaskGrant) -> Task:
        """A task another workload delegated to this agent (:meth:`Task.delegate`):
        its token is bound to this agent's key, so only this agent can use it."""
        return Task(self, grant)

    def open_task_for_user(
        self, *, id_token: str, playbook: str, intent: str, **options: Unpack[Narrowing]
    ) -> Task:
        """Open a task acting for the person of ``id_token`` (an OIDC ID token from an
        issuer the control plane trusts), by RFC 8693 token exchange; the task records
        the verified person and policies see it as ``context.task.user``. ``options``:
        ``authorization_details``, ``ttl``, ``max_calls``, ``audience``."""
        call = self.for_user_call(id_token, playbook, intent, options)
        return Task(self, exchanged(self.send(call)))

    def close(self) -> None:
        self.http.close()
        if self._mtls is not None:
            self._mtls.close()

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
