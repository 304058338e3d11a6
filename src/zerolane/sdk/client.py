"""The synchronous agent client."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec

from zerolane.sdk.common import (
    DEFAULT_TIMEOUT,
    DecisionResult,
    Svid,
    TaskGrant,
    attest_body,
    check,
    decide_body,
    decision_of,
    dpop_headers,
    grant_of,
    new_key,
    open_body,
    svid_of,
)
from zerolane.sdk.mcp_auth import McpAuth

if TYPE_CHECKING:
    from zerolane.gateway.inproc import InprocDecider, TaskCredentials


class Task:
    """An open task: its token, and requests made with fresh DPoP proofs.

    As a context manager it completes the task on exit, exceptions included.
    """

    def __init__(self, agent: Agent, grant: TaskGrant) -> None:
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
        """Headers for one request to an enforcement point (token plus a fresh proof)."""
        return dpop_headers(self._agent.key, self.token, method, url)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send a request through an enforcement point with this task's credentials."""
        headers = {**kwargs.pop("headers", {}), **self.headers(method, url)}
        return self._agent.http.request(method, url, headers=headers, **kwargs)

    def decide(
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
        """Ask the control plane to decide a request of this task (spends a call if allowed)."""
        mapping = {
            "action": action,
            "resource": resource,
            "destination": destination,
            "sensitivity": sensitivity,
        }
        body = decide_body(self._agent.key, self.token, method, url, mapping, audience)
        return decision_of(check(self._agent.http.post(self._agent.url("/v1/decide"), json=body)))

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

    def complete(self) -> None:
        """End the task; its token is refused everywhere from the next request on."""
        if self.completed:
            return
        url = self._agent.url(f"/v1/tasks/{self.task_id}/complete")
        check(self._agent.http.post(url, headers=self.headers("POST", url)))
        self.completed = True

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
            exc.add_note(f"zerolane: completing task {self.task_id} also failed: {complete_error}")


class Agent:
    """A workload's client: its in-memory key, its SVID, and its tasks."""

    def __init__(
        self,
        base_url: str,
        *,
        key: ec.EllipticCurvePrivateKey | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.key = key or new_key()
        self.http = http or httpx.Client(timeout=DEFAULT_TIMEOUT)
        self.svid: Svid | None = None

    def url(self, path: str) -> str:
        return self.base_url + path

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
    ) -> Agent:
        """Make a key, attest with a join token, and keep the key-bound SVID."""
        agent = cls(base_url, http=http)
        body = attest_body(join_token, agent.key, audience, ttl, spiffe_id)
        try:
            agent.svid = svid_of(check(agent.http.post(agent.url("/v1/attest"), json=body)))
        except BaseException:
            if http is None:  # the caller never sees this agent: close the client we made
                agent.close()
            raise
        return agent

    @property
    def spiffe_id(self) -> str:
        if self.svid is None:
            raise RuntimeError("attest first")
        return self.svid.spiffe_id

    def open_task(
        self,
        *,
        playbook: str,
        intent: str,
        authorization_details: Sequence[Mapping[str, Any]] | None = None,
        ttl: int | None = None,
        max_calls: int | None = None,
        on_behalf_of: str | None = None,
        audience: Sequence[str] | None = None,
    ) -> Task:
        """Open a task (SVID plus DPoP proof); prefer :meth:`task` to complete it surely."""
        if self.svid is None:
            raise RuntimeError("attest first: a task is opened with the agent's SVID")
        url = self.url("/v1/tasks")
        body = open_body(
            playbook, intent, authorization_details, ttl, max_calls, on_behalf_of, audience
        )
        headers = dpop_headers(self.key, self.svid.token, "POST", url)
        return Task(self, grant_of(check(self.http.post(url, json=body, headers=headers))))

    def task(self, **kwargs: Any) -> Task:
        """``with agent.task(playbook=..., intent=...) as task:`` completes on exit."""
        return self.open_task(**kwargs)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
