"""Agent-side SDK: attest, hold a DPoP key in memory, open tasks, sign proofs.

    from zerolane.sdk import Agent

    agent = Agent.attest("http://127.0.0.1:8700", join_token=token)
    with agent.task(playbook="quarterly-report", intent="Q3 summary for finance") as task:
        decision = task.decide("GET", "https://finance.example.org/reports/q3")
    # the task is completed on exit, exceptions included

:class:`AsyncAgent` is the same for asyncio.
"""

from zerolane.sdk.aio import AsyncAgent, AsyncTask
from zerolane.sdk.client import Agent, Task
from zerolane.sdk.common import ApprovalRequired, DecisionResult, ZerolaneApiError

__all__ = [
    "Agent",
    "ApprovalRequired",
    "AsyncAgent",
    "AsyncTask",
    "DecisionResult",
    "Task",
    "ZerolaneApiError",
]
