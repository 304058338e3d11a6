"""Run an agent's guarded tool functions under one of its tasks.

    from zerolane.gateway.inproc import guard
    from zerolane.sdk.guard import guard_context

    @guard("read", "reports/{name}", sensitivity="internal")
    def read_report(name: str) -> str: ...

    with agent.task(playbook="quarterly-report", intent="Q3 summary") as task:
        with guard_context(task):
            read_report("q3")  # decided for this task, signed with the agent's key

Works the same with :class:`~zerolane.sdk.AsyncTask` around ``async`` tools.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from zerolane.gateway.inproc import (
    InprocDecider,
    ProofSigner,
    RemoteDecider,
    TaskCredentials,
    task_context,
)
from zerolane.sdk.aio import AsyncTask
from zerolane.sdk.client import Task


def proof_signer(task: Task | AsyncTask) -> ProofSigner:
    """A function signing a fresh DPoP proof for ``(method, url)`` with the agent's key."""

    def sign(method: str, url: str) -> str:
        return task.headers(method, url)["DPoP"]

    return sign


def remote_decider(task: Task | AsyncTask, audience: str | None = None) -> RemoteDecider:
    """Decide through the control plane the task was opened at, on the agent's client,
    as the enforcement point whose credential the agent holds."""
    if isinstance(task, AsyncTask):
        agent = task._agent
        return RemoteDecider(
            agent.base_url,
            audience,
            credential=agent.enforcement_point,
            async_client=agent.http,
        )
    sync_agent = task._agent
    return RemoteDecider(
        sync_agent.base_url,
        audience,
        credential=sync_agent.enforcement_point,
        client=sync_agent.http,
    )


def guard_context(
    task: Task | AsyncTask, *, decider: InprocDecider | None = None
) -> AbstractContextManager[TaskCredentials]:
    """Set ``task`` as the task of guarded calls in this context (and its asyncio tasks).

    ``decider`` defaults to the control plane the task was opened at.
    """
    return task_context(task.token, proof_signer(task), decider=decider or remote_decider(task))
