"""The probe's credentials from a zerolane home: the probe opens its own tasks.

The home gets two workloads of the probe's own (``spiffe://<trust domain>/zerolane/probe``
and ``.../probe-delegate``, registered on first use, owner ``zerolane-probe``), attested
with join tokens the home mints, and the probe opens tasks of the named playbook (whose
openers must name the probe). Everything an admin of the home can do is open to it:
complete and revoke a task, delegate, read the issuer's keys and sign with them (to send
a correctly signed token the issuer would never issue: expired, not yet valid).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from zerolane.audit.events import Actor
from zerolane.errors import ZerolaneError
from zerolane.probe.credentials import Credential, IssuerRefused
from zerolane.probe.model import Need
from zerolane.sdk import Agent, Task, ZerolaneApiError
from zerolane.server.deployment import Deployment

PROBE_OWNER = "zerolane-probe"
#: the audience of a token for another enforcement point (wrong-audience scenarios)
ELSEWHERE = "urn:zerolane:probe:elsewhere"
#: an action no parent holds: what a wider delegation asks for
WIDER_ACTION = "zerolane-probe-wider"
_ACTOR = Actor("admin", "zerolane probe")
_SVID_TTL = 3600


class HomeSource:
    """Tasks of ``playbook`` opened by the probe's workload through the control plane
    at ``control_url``, for ``audience`` (the target's)."""

    kind = "zerolane"
    meets = frozenset(
        {
            Need.LIFECYCLE,
            Need.SECOND_CREDENTIAL,
            Need.SHORT_LIVED,
            Need.ISSUER_KEY,
            Need.ISSUER_JWKS,
            Need.OTHER_AUDIENCE,
            Need.DELEGATION,
        }
    )

    def __init__(
        self,
        deployment: Deployment,
        control_url: str,
        playbook: str,
        *,
        audience: Sequence[str] | None = None,
        authorization_details: Sequence[Mapping[str, Any]] | None = None,
        workload: str | None = None,
        verify: bool | str = True,
    ) -> None:
        self._deployment = deployment
        self._control_url = control_url
        self._playbook = playbook
        self._audience = list(audience) if audience else None
        self._details = list(authorization_details) if authorization_details else None
        trust_domain = deployment.config.trust_domain
        self.workload = workload or f"spiffe://{trust_domain}/zerolane/probe"
        self.delegate_workload = f"{self.workload}-delegate"
        self._verify = verify
        self._agent: Agent | None = None
        self._delegate: Agent | None = None
        self._open: list[Task] = []

    # agents

    def _attested(self, spiffe_id: str) -> Agent:
        if self._deployment.stores.get_workload(spiffe_id) is None:
            self._deployment.registry.register(
                spiffe_id, selectors=[], owner=PROBE_OWNER, actor=_ACTOR
            )
        join = self._deployment.join_tokens.create(spiffe_id, ttl=300, actor=_ACTOR).token
        try:
            return Agent.attest(self._control_url, join_token=join, ttl=_SVID_TTL)
        except ZerolaneApiError as error:
            raise IssuerRefused(error.status, error.reason, url=self._control_url) from None

    @property
    def agent(self) -> Agent:
        if self._agent is None:
            self._agent = self._attested(self.workload)
        return self._agent

    # the port

    def issue(self, *, ttl: int | None = None, audience: str | None = None) -> Credential:
        try:
            task = self.agent.open_task(
                playbook=self._playbook,
                intent="zerolane probe: control testing",
                audience=[audience] if audience else self._audience,
                authorization_details=self._details,
                ttl=ttl,
            )
        except ZerolaneApiError as error:
            raise IssuerRefused(error.status, error.reason, url=self._control_url) from None
        self._open.append(task)
        return Credential(task.token, self.agent.key, handle=task)

    def complete(self, credential: Credential) -> None:
        task: Task = credential.handle
        task.complete()

    def revoke(self, credential: Credential) -> None:
        task: Task = credential.handle
        self._deployment.lifecycle.revoke(task.task_id, actor=_ACTOR, reason="zerolane probe")

    def delegate(self, credential: Credential, *, wider: bool) -> Credential:
        parent: Task = credential.handle
        if self._delegate is None:
            self._delegate = self._attested(self.delegate_workload)
        assert self._delegate.svid is not None
        details = [dict(entry) for entry in parent.grant.scope.get("authorization_details", [])]
        if wider:
            details = [
                {**entry, "actions": [*entry.get("actions", []), WIDER_ACTION]} for entry in details
            ] or [{"type": "zerolane_task", "actions": [WIDER_ACTION]}]
        try:
            grant = parent.delegate(
                delegate_svid=self._delegate.svid.token,
                authorization_details=details or None,
                audience=self._audience,
                max_calls=5,
            )
        except ZerolaneApiError as error:
            raise IssuerRefused(error.status, error.reason, url=self._control_url) from None
        child = self._delegate.adopt(grant)
        return Credential(child.token, self._delegate.key, handle=child)

    def _revoke_quietly(self, task_id: str) -> None:
        try:
            self._deployment.lifecycle.revoke(task_id, actor=_ACTOR, reason="zerolane probe ended")
        except ZerolaneError:  # ended already: nothing left to revoke
            return

    def sign(self, claims: Mapping[str, Any]) -> str:
        return self._deployment.keyring.sign(dict(claims), typ="at+jwt")

    def issuer_jwks(self) -> list[dict[str, Any]]:
        return [dict(key) for key in self._deployment.keyring.public_keys()]

    def secrets(self) -> tuple[str, ...]:
        return ()  # its tokens are remembered as they are issued; the keys never leave

    def close(self) -> None:
        """End every task the probe opened: complete it, else (its token refused, the
        control plane out of reach) revoke it in the home, so none outlives the run."""
        for task in self._open:
            if task.completed:
                continue
            try:
                task.complete()
            except Exception:  # ended already (revoked, expired), or completing failed
                self._revoke_quietly(task.task_id)
        self._open.clear()
        for agent in (self._agent, self._delegate):
            if agent is not None:
                agent.close()
        self._agent = self._delegate = None
