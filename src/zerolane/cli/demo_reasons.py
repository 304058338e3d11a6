"""What the demo's refusals mean, in words (each reason id it shows, explained)."""

from __future__ import annotations

import re
import shlex
import sys

REASON_WORDS = {
    "join_token.used": "a join token works once, and this one was already spent",
    "token.typ": "an SVID says who the agent is, not which task it is doing: "
    "only a task token is accepted for a request",
    "scope.action": "the task's scope has no such action",
    "scope.resource": "the task's scope does not reach that resource",
    "scope.destination": "the task's scope does not include that destination",
    "scope.sensitivity": "the data is more sensitive than the task's ceiling",
    "flow.egress_after_sensitive_read": "once a task has read confidential data, it may "
    "not send anything outside the trust domain",
    "enforcement_point.credential": "only a registered enforcement point may ask for a decision",
    "dpop.replayed": "a DPoP proof is usable once, everywhere",
    "dpop.key_mismatch": "the token is bound to another key than the one that signed the proof",
    "task.completed": "the task is over, so its token is dead",
    "task.revoked": "ending a task ends every task delegated from it",
    "task.suspended": "a suspended task can do nothing until an admin resumes it",
    "auth.missing": "no task token, no access",
    "approval.required": "a policy asks a person to approve this exact request first, "
    "and an approval is used once",
}
_REASON = re.compile(r"\b[a-z_]+\.[a-z_]+\b")


def explained(text: str) -> str:
    """``text`` with the first reason id it names explained after a dash."""
    for reason in _REASON.findall(text):
        words = REASON_WORDS.get(reason)
        if words:
            return f"{text} — {words}"
    return text


def self_command() -> str:
    """How to run this very ``zerolane`` again, as a shell would take it."""
    invoked = sys.argv[0] if sys.argv else ""
    if invoked.endswith(("zerolane", "zerolane.exe")):
        return shlex.quote(invoked)
    return f"{shlex.quote(sys.executable)} -m zerolane"
