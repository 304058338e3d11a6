"""A deployment: one zerolane home opened with its stores, keys, audit log and services.

This is where backends are chosen (from the config's store URL) and handed to the
core as ports; nothing below this layer knows which backend it runs on.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from zerolane.audit.events import Actor
from zerolane.audit.log import AuditLog
from zerolane.config import CONFIG_NAME, Config, TasksConfig, load_config, render_config
from zerolane.errors import Conflict, InvalidInput, ZerolaneError
from zerolane.fsutil import ensure_private_dir, write_private
from zerolane.identity.admin import create_admin_credential
from zerolane.identity.attestors.base import Attestor
from zerolane.identity.attestors.join_token import JoinTokenAttestor
from zerolane.identity.attestors.jwt_issuer import JwtIssuerAttestor
from zerolane.identity.attestors.x509_federation import X509FederationAttestor
from zerolane.identity.federation import Federation
from zerolane.identity.join_tokens import JoinTokens
from zerolane.identity.keyring import Keyring
from zerolane.identity.registry import WorkloadRegistry
from zerolane.identity.rotation import rotate_keys
from zerolane.identity.service import IdentityService
from zerolane.identity.spiffe_id import parse_trust_domain
from zerolane.policy.cedar import CedarEngine
from zerolane.policy.defaults import install_defaults
from zerolane.store.memory.replay import MemoryReplayCache
from zerolane.store.open import open_stores
from zerolane.store.ports import Stores
from zerolane.store.records import Workload
from zerolane.tasks.auth import Authenticator
from zerolane.tasks.decisions import Decider
from zerolane.tasks.lifecycle import TaskLifecycle
from zerolane.tasks.playbook_registry import PlaybookRegistry
from zerolane.types import Clock, Outcome, Sensitivity, SystemClock, TaskState, WorkloadStatus

HOME_ENV = "ZEROLANE_HOME"
DEFAULT_HOME = ".zerolane"


def resolve_home(home: Path | None) -> Path:
    """``--home``, else ``$ZEROLANE_HOME``, else ``./.zerolane``."""
    if home is not None:
        return home
    env = os.environ.get(HOME_ENV)
    return Path(env) if env else Path(DEFAULT_HOME)


def build_attestors(config: Config, stores: Stores, clock: Clock, home: Path) -> list[Attestor]:
    attestors: list[Attestor] = [JoinTokenAttestor(stores, clock)]
    if config.jwt_issuers:
        attestors.append(JwtIssuerAttestor(config.jwt_issuers, clock, base=home))
    attestors.append(
        X509FederationAttestor(stores, clock, audience=f"spiffe://{config.trust_domain}")
    )
    return attestors


class PolicyHolder:
    """Loads the policy engine on first use: commands that need no decision (audit,
    workloads) still work while an operator fixes an invalid policy set."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._engine: CedarEngine | None = None
        self._lock = threading.Lock()

    def get(self) -> CedarEngine:
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = CedarEngine(self.directory)  # refuses an invalid set
        return self._engine

    def stop(self) -> None:
        if self._engine is not None:
            self._engine.stop()


@dataclass(kw_only=True)
class Deployment:
    home: Path
    config: Config
    clock: Clock
    stores: Stores
    keyring: Keyring
    audit: AuditLog
    registry: WorkloadRegistry
    identity: IdentityService
    join_tokens: JoinTokens
    attestors: list[Attestor] = field(default_factory=list)
    federation: Federation
    playbooks: PlaybookRegistry
    policies: PolicyHolder
    replay: MemoryReplayCache
    authenticator: Authenticator
    lifecycle: TaskLifecycle
    decider: Decider

    @classmethod
    def open(cls, home: Path, clock: Clock | None = None) -> Deployment:
        clock = clock or SystemClock()
        config = load_config(home)
        policies = PolicyHolder(home / config.policy_dir)
        stores = open_stores(config.store_url, base=home)
        keyring = Keyring(home / "keys", clock)
        audit = AuditLog(stores, clock, mode=config.audit.mode)
        td = config.trust_domain
        registry = WorkloadRegistry(td, stores, stores, audit, clock)
        attestors = build_attestors(config, stores, clock, home)
        identity = IdentityService(
            trust_domain=td,
            keyring=keyring,
            workloads=stores,
            attestors=attestors,
            audit=audit,
            clock=clock,
            svid_config=config.svid,
        )
        playbooks = PlaybookRegistry(stores, audit, clock)
        replay = MemoryReplayCache()
        authenticator = Authenticator(
            trust_domain=td, keyring=keyring, workloads=stores, replay=replay, clock=clock
        )

        return cls(
            home=home,
            config=config,
            clock=clock,
            stores=stores,
            keyring=keyring,
            audit=audit,
            registry=registry,
            identity=identity,
            join_tokens=JoinTokens(stores, registry, audit, clock),
            attestors=attestors,
            federation=Federation(stores, audit, clock, td),
            playbooks=playbooks,
            policies=policies,
            replay=replay,
            authenticator=authenticator,
            lifecycle=TaskLifecycle(
                trust_domain=td,
                keyring=keyring,
                tasks=stores,
                playbooks=playbooks,
                engine=policies.get,
                audit=audit,
                clock=clock,
            ),
            decider=Decider(
                authenticator=authenticator,
                tasks=stores,
                engine=policies.get,
                audit=audit,
                clock=clock,
                internal_destinations=config.tasks.internal_destinations,
                default_sensitivity=Sensitivity.parse(config.tasks.default_sensitivity),
            ),
        )

    @property
    def engine(self) -> CedarEngine:
        """The policy engine (loaded, and validated, on first use)."""
        return self.policies.get()

    def rotate_keys(self, actor: Actor) -> str:
        return rotate_keys(
            self.keyring, self.audit, publish_for=self.config.max_token_lifetime, actor=actor
        )

    def reload_policies(self, actor: Actor) -> str:
        """Validate and swap in the policies on disk; on any error the old set stays."""
        try:
            version = self.engine.reload()
        except ZerolaneError as err:
            self.record_policy_reload(False, f"{err.reason}: {err.message}", actor)
            raise
        self.record_policy_reload(True, version, actor)
        return version

    def record_policy_reload(self, ok: bool, detail: str, actor: Actor) -> None:
        """Audit a policy reload (``detail``: the new version, or the refusal)."""
        self.audit.record(
            "policy.reloaded",
            actor=actor,
            subject=str(self.home / self.config.policy_dir),
            outcome=Outcome.SUCCESS if ok else Outcome.FAILURE,
            reason="ok" if ok else "policy.invalid",
            details={"version": detail}
            if ok
            else {
                "error": detail[:2000],
                "active_version": self.engine.version,
            },
        )

    def disable_workload(self, spiffe_id: str, actor: Actor) -> Workload:
        """Disable a workload and revoke its live tasks: effective at once."""
        workload = self.registry.set_status(spiffe_id, WorkloadStatus.DISABLED, actor=actor)
        for task in self.lifecycle.list(owner=spiffe_id, state=TaskState.ACTIVE, limit=10_000):
            with contextlib.suppress(Conflict):
                self.lifecycle.revoke(task.task_id, actor=actor, reason="workload.disabled")
        return workload

    def close(self) -> None:
        self.policies.stop()
        self.stores.close()


def init_home(home: Path, trust_domain: str, clock: Clock | None = None) -> tuple[Deployment, str]:
    """Create a new home; return the opened deployment and the admin credential.

    Refuses (``home.exists``) when ``home`` already holds a zerolane home or keys.
    """
    clock = clock or SystemClock()
    trust_domain = parse_trust_domain(trust_domain)
    if (home / CONFIG_NAME).exists() or (home / "keys").exists():
        raise InvalidInput(
            "home.exists", f"{home} already holds a zerolane home; refusing to overwrite its keys"
        )
    ensure_private_dir(home)
    kid = Keyring(home / "keys", clock).create()
    config = Config(
        trust_domain=trust_domain,
        tasks=TasksConfig(internal_destinations=(trust_domain, f"*.{trust_domain}")),
    )
    install_defaults(home / config.policy_dir)
    write_private(home / CONFIG_NAME, render_config(config).encode())
    deployment = Deployment.open(home, clock)
    token, record = create_admin_credential(deployment.stores, clock)
    deployment.audit.record(
        "home.initialized",
        actor=Actor("admin", "cli"),
        subject=f"spiffe://{trust_domain}",
        outcome=Outcome.SUCCESS,
        details={"kid": kid, "admin_credential_id": record.credential_id},
    )
    return deployment, token
