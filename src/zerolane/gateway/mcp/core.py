"""The core services the gateway enforces with, and the task check it shares.

The gateway gets these from its caller (the CLI opens a deployment and hands them
over), so it depends on the core's ports and never on the server or a store backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from zerolane.audit.log import AuditLog
from zerolane.gateway.refusals import RefusalAudit
from zerolane.policy.engine import PolicyEngine
from zerolane.store.ports import TaskStore
from zerolane.tasks.auth import Authenticator
from zerolane.tasks.decisions import Decider
from zerolane.tasks.lifecycle import TaskLifecycle
from zerolane.types import Clock


@dataclass(frozen=True, slots=True, kw_only=True)
class Enforcement:
    decider: Decider
    authenticator: Authenticator
    tasks: TaskStore
    engine: Callable[[], PolicyEngine]
    audit: AuditLog
    clock: Clock
    #: checks a request's task is live, recording the expiry of one it finds expired
    lifecycle: TaskLifecycle
    internal_destinations: tuple[str, ...] = ()
    #: signs a JWT claims set with the deployment's active key (``Keyring.sign``): the
    #: subject tokens of upstream token exchange (None: no upstream can use one)
    sign: Callable[[dict[str, Any], str], str] | None = None
    #: where refusals made before any decision are audited, rate-limited (None: not)
    refusals: RefusalAudit | None = None
    #: the deployment's policy set runs in shadow mode (``policy_mode``): listings show
    #: what its policies deny too, as its calls are relayed (shadow allows)
    shadow_policies: bool = False
