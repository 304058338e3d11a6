"""A deployment: one zerolane home opened with its stores, keys, audit log and services.

This is where backends are chosen (from the config's store URL) and handed to the
core as ports; nothing below this layer knows which backend it runs on.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from zerolane.audit.decision_log import decision_log
from zerolane.audit.events import Actor, Event
from zerolane.audit.log import AuditLog
from zerolane.config import CONFIG_NAME, Config, TasksConfig, load_config, render_config
from zerolane.detection.alerts import load_secret
from zerolane.detection.detectors import build_detectors
from zerolane.detection.response import Responder
from zerolane.detection.risk import RiskView
from zerolane.detection.runner import DetectionRunner
from zerolane.errors import Conflict, InvalidInput, ZerolaneError
from zerolane.fsutil import ensure_private_dir, write_private
from zerolane.gateway.refusals import RefusalAudit, RefusalRates
from zerolane.grants.leases import LeaseManager
from zerolane.home import DEFAULT_HOME as DEFAULT_HOME  # re-exported: one rule
from zerolane.home import HOME_ENV as HOME_ENV
from zerolane.home import resolve_home as resolve_home
from zerolane.identity.admin import create_admin_credential
from zerolane.identity.attestors.base import Attestor
from zerolane.identity.attestors.join_token import JoinTokenAttestor
from zerolane.identity.attestors.jwt_issuer import JwtIssuerAttestor
from zerolane.identity.attestors.x509_federation import X509FederationAttestor
from zerolane.identity.ca import X509Authority
from zerolane.identity.enforcement_points import EnforcementPoints
from zerolane.identity.federation import Federation
from zerolane.identity.join_tokens import JoinTokens
from zerolane.identity.keyring import Keyring
from zerolane.identity.registry import WorkloadRegistry
from zerolane.identity.rotation import rotate_keys
from zerolane.identity.service import IdentityService
from zerolane.identity.spiffe_id import parse_trust_domain
from zerolane.identity.users import UserTokenVerifier
from zerolane.policy.cedar import CedarEngine
from zerolane.policy.defaults import install_defaults
from zerolane.server import webhook
from zerolane.server.grant_brokers import build_brokers
from zerolane.store.memory.bus import MemoryRevocationBus
from zerolane.store.memory.replay import MemoryReplayCache
from zerolane.store.open import open_stores
from zerolane.store.ports import RevocationBus, Stores
from zerolane.store.records import AdminCredential, TaskRecord, Workload
from zerolane.tasks.approvals import Approvals, ApprovalSettings
from zerolane.tasks.auth import Authenticator
from zerolane.tasks.decisions import Decider
from zerolane.tasks.exchange import TokenExchange
from zerolane.tasks.holds import Holds
from zerolane.tasks.lifecycle import TaskLifecycle
from zerolane.tasks.playbook_registry import PlaybookRegistry
from zerolane.tasks.playbook_warnings import AttestationFacts, playbook_warnings
from zerolane.tasks.playbooks import Playbook
from zerolane.tasks.revocation import RevocationPublisher, RevocationWatch
from zerolane.tasks.task_grants import TaskGrants
from zerolane.types import (
    Clock,
    ForwardClock,
    Outcome,
    Sensitivity,
    SystemClock,
    TaskState,
    WorkloadStatus,
)

log = logging.getLogger(__name__)


def forward_clock(clock: Clock | None) -> ForwardClock:
    """``clock`` (the system clock when None) as a clock that never goes backwards
    within this process: a deployment stamps tokens, windows and events with it, and a
    task this process saw expired stays expired to it whatever the clock given does."""
    if clock is None:
        return SystemClock()
    return clock if isinstance(clock, ForwardClock) else ForwardClock(clock)


def build_attestors(
    config: Config, stores: Stores, clock: Clock, home: Path, audit: AuditLog
) -> list[Attestor]:
    attestors: list[Attestor] = [JoinTokenAttestor(stores, clock, audit)]
    if config.jwt_issuers:
        attestors.append(JwtIssuerAttestor(config.jwt_issuers, clock, base=home))
    attestors.append(
        X509FederationAttestor(
            stores, clock, audience=f"spiffe://{config.trust_domain}", proofs=stores
        )
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
                    # refuses an invalid set; requests come from the context builder
                    self._engine = CedarEngine(self.directory, built_requests=True)
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
    #: the revocation bus (in-process; Redis when scaled out) and this process's watch
    bus: RevocationBus
    revocations: RevocationWatch
    #: grant leases (``[grants]``) and the task-facing side of them
    grants: LeaseManager
    task_grants: TaskGrants
    #: verifies people's ID tokens (``[[users.issuers]]``) for tasks opened on their behalf
    users: UserTokenVerifier
    #: the trust domain's X.509 CA (X.509-SVIDs); created on first use in an older home
    x509_ca: X509Authority
    #: human approvals a policy asks for (``@approval("required")``, ``[approvals]``)
    approvals: Approvals
    #: the risk scores the decider reads (``context.risk``), kept by the responder
    risk: RiskView
    #: tasks a response rule holds for human approval (``require_approval``)
    holds: Holds

    @classmethod
    def open(cls, home: Path, clock: Clock | None = None) -> Deployment:
        """Open ``home``; every service gets ``clock`` (the system clock by default)
        wrapped so that it never goes backwards (:func:`forward_clock`)."""
        clock = forward_clock(clock)
        config = load_config(home)
        policies = PolicyHolder(home / config.policy_dir)
        stores = open_stores(config.store_url, base=home)
        keyring = Keyring(home / "keys", clock)
        audit = AuditLog(stores, clock, mode=config.audit.mode)
        td = config.trust_domain
        x509_ca = X509Authority(home / "keys", td, clock)  # reads nothing until used
        registry = WorkloadRegistry(td, stores, stores, audit, clock)
        attestors = build_attestors(config, stores, clock, home, audit)
        identity = IdentityService(
            trust_domain=td,
            keyring=keyring,
            workloads=stores,
            attestors=attestors,
            audit=audit,
            clock=clock,
            svid_config=config.svid,
            x509_ca=x509_ca,
        )
        playbooks = PlaybookRegistry(stores, audit, clock)
        replay = MemoryReplayCache()
        authenticator = Authenticator(
            trust_domain=td,
            keyring=keyring,
            workloads=stores,
            replay=replay,
            proofs=stores,
            clock=clock,
            x509_roots=x509_ca.roots,
            # standard MCP clients that prove no key: only where [oauth] allows them
            bearer_clients=config.oauth.enabled and config.oauth.allow_bearer_clients,
        )

        bus = MemoryRevocationBus(clock)
        leases = LeaseManager(
            leases=stores,
            tasks=stores,
            brokers=build_brokers(config.grants, home, clock),
            audit=audit,
            clock=clock,
        )
        publisher = RevocationPublisher(bus, clock)
        holds = Holds(stores, audit, clock, refresh=config.approvals.holds_refresh)
        on_ended = ended_hook(publisher, leases, holds.release_ended)
        revocations = RevocationWatch(bus, clock, grace_seconds=config.revocation.grace_seconds)
        users = UserTokenVerifier(config.users.issuers, clock, base=home)  # checks the config
        risk_settings = config.response.risk
        risk = RiskView(
            stores,
            clock,
            half_life=risk_settings.half_life_seconds,
            refresh=risk_settings.refresh_seconds,
        )
        approvals = Approvals(
            stores,
            audit,
            clock,
            ApprovalSettings(
                config.approvals.ttl, config.approvals.max_pending, config.approvals.retention
            ),
        )
        lifecycle = TaskLifecycle(
            trust_domain=td,
            keyring=keyring,
            tasks=stores,
            playbooks=playbooks,
            engine=policies.get,
            audit=audit,
            clock=clock,
            on_ended=on_ended,
            on_resumed=publisher.resumed,
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
            lifecycle=lifecycle,
            decider=Decider(
                authenticator=authenticator,
                tasks=stores,
                decisions=decision_log(audit, stores),
                engine=policies.get,
                clock=clock,
                internal_destinations=config.tasks.internal_destinations,
                default_sensitivity=Sensitivity.parse(config.tasks.default_sensitivity),
                revocations=revocations,
                approvals=approvals,
                on_last_call=lifecycle.after_allowed,
                on_expired=lambda task, now: lifecycle.mark_expired(task, now=now),
                risk=risk.facts,
                held=holds.held,
                shadow_policies=config.policy_mode == "shadow",
            ),
            bus=bus,
            revocations=revocations,
            grants=leases,
            task_grants=TaskGrants(
                tasks=stores,
                playbooks=playbooks,
                leases=leases,
                audit=audit,
                clock=clock,
                held=holds.held,
            ),
            users=users,
            x509_ca=x509_ca,
            approvals=approvals,
            risk=risk,
            holds=holds,
        )

    @functools.cached_property
    def exchange(self) -> TokenExchange:
        """Token exchange (``POST /v1/token``): delegation and tasks for a person."""
        return TokenExchange(
            trust_domain=self.config.trust_domain,
            keyring=self.keyring,
            authenticator=self.authenticator,
            lifecycle=self.lifecycle,
            tasks=self.stores,
            playbooks=self.playbooks,
            engine=self.policies.get,
            audit=self.audit,
            clock=self.clock,
            users=self.users,
        )

    @functools.cached_property
    def refusals(self) -> RefusalAudit:
        """The gateways' refusals before any decision (``gateway.refused``), audited at
        ``[audit]``'s rates, written off the request path."""
        audit = self.config.audit
        rates = RefusalRates(
            per_second=audit.refusals_per_second,
            burst=audit.refusals_burst,
            total_per_second=audit.refusals_total_per_second,
        )
        return RefusalAudit(self.audit, self.clock, rates)

    @functools.cached_property
    def detection(self) -> DetectionRunner:
        """The detectors of ``[detection]`` over this deployment's audit log (the API's
        lifespan starts and stops its thread when ``[detection] enabled``)."""
        settings = self.config.detection
        return DetectionRunner(
            self.stores,
            self.audit,
            build_detectors(settings, self.home),
            self.clock,
            batch_size=settings.batch_size,
            poll_interval=settings.poll_interval,
            then=(self.responder.catch_up,),
        )

    @functools.cached_property
    def responder(self) -> Responder:
        """The ``[response]`` rules over the detections (run after each detection step);
        refused (``config.response_secret``) when a rule alerts and the webhook's
        secret is not in the environment."""
        settings = self.config.response
        alerting = any("alert" in rule.actions for rule in settings.rules)
        return Responder(
            self.stores,
            self.audit,
            settings,
            _ResponseActions(self),
            self.clock,
            poster=webhook.post,
            secret=load_secret(settings.webhook.secret_env) if alerting else None,
            view=self.risk,
            batch_size=self.config.detection.batch_size,
        )

    @functools.cached_property
    def enforcement_points(self) -> EnforcementPoints:
        """Who may ask ``POST /v1/decide``, and about which URLs."""
        return EnforcementPoints(self.stores, self.audit, self.clock)

    def playbook_warnings(self, playbook: Playbook) -> list[str]:
        """Likely mistakes in ``playbook`` for this home (its trust domain, federations
        and JWT issuers): one line each, none when it looks right."""
        issuers = self.config.jwt_issuers
        facts = AttestationFacts(
            trust_domain=self.config.trust_domain,
            federated=[bundle.trust_domain for bundle in self.federation.list()],
            issuers=[issuer.name for issuer in issuers],
            selector_types={kind for issuer in issuers for kind in issuer.claims.values()},
        )
        return playbook_warnings(playbook, facts)

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
        """Disable a workload and revoke its live (active or suspended) tasks: effective
        at once."""
        workload = self.registry.set_status(spiffe_id, WorkloadStatus.DISABLED, actor=actor)
        for state in (TaskState.ACTIVE, TaskState.SUSPENDED):
            for task in self.lifecycle.list(owner=spiffe_id, state=state, limit=10_000):
                with contextlib.suppress(Conflict):
                    self.lifecycle.revoke(task.task_id, actor=actor, reason="workload.disabled")
        return workload

    def close(self) -> None:
        if "detection" in self.__dict__:  # built: its thread stops before the store closes
            self.detection.stop()
        if "refusals" in self.__dict__:  # built: its pending events are written first
            self.refusals.close()
        self.revocations.close()
        self.policies.stop()
        self.stores.close()


class _ResponseActions:
    """What a response rule does, through this deployment (each audited there)."""

    def __init__(self, deployment: Deployment) -> None:
        self._deployment = deployment

    def suspend(self, task_id: str, actor: Actor, reason: str) -> object:
        return self._deployment.lifecycle.suspend(task_id, actor=actor, reason=reason)

    def revoke(self, task_id: str, actor: Actor, reason: str) -> object:
        return self._deployment.lifecycle.revoke(task_id, actor=actor, reason=reason)

    def disable(self, workload: str, actor: Actor) -> object:
        return self._deployment.disable_workload(workload, actor)

    def require_approval(
        self, task_id: str, actor: Actor, rule: str, detector: str, detection: str
    ) -> object:
        return self._deployment.holds.place(
            task_id, rule=rule, detector=detector, detection=detection, actor=actor
        )


def ended_hook(
    publisher: RevocationPublisher,
    leases: LeaseManager,
    release_holds: Callable[[Sequence[TaskRecord]], None] | None = None,
) -> Callable[[Sequence[TaskRecord]], None]:
    """The lifecycle's ``on_ended``: announce the ended (or suspended) tasks on the
    revocation bus, then revoke their grants and release their holds. None may undo
    what the store already holds, so a failure is logged; the grant sweeper finds leases
    a failure left active, and an admin releases a hold left behind."""

    def on_ended(tasks: Sequence[TaskRecord]) -> None:
        publisher(tasks)  # logs and counts its own failures
        try:
            leases.on_ended(tasks)
        except Exception:
            log.exception("revoking the grants of %d ended task(s) failed", len(tasks))
        if release_holds is not None:
            try:
                release_holds(tasks)
            except Exception:
                log.exception("releasing the holds of %d ended task(s) failed", len(tasks))

    return on_ended


def init_home(home: Path, trust_domain: str, clock: Clock | None = None) -> tuple[Deployment, str]:
    """Create a new home; return the opened deployment and the admin credential.

    Refuses (``home.exists``) when ``home`` already holds a zerolane home or keys.
    """
    clock = forward_clock(clock)  # one clock for the keys, the CA and the deployment
    trust_domain = parse_trust_domain(trust_domain)
    if (home / CONFIG_NAME).exists() or (home / "keys").exists():
        raise InvalidInput(
            "home.exists", f"{home} already holds a zerolane home; refusing to overwrite its keys"
        )
    ensure_private_dir(home)
    kid = Keyring(home / "keys", clock).create()
    ca = X509Authority(home / "keys", trust_domain, clock).create()
    config = Config(
        trust_domain=trust_domain,
        tasks=TasksConfig(internal_destinations=(trust_domain, f"*.{trust_domain}")),
    )
    install_defaults(home / config.policy_dir)
    write_private(home / CONFIG_NAME, render_config(config).encode())
    deployment = Deployment.open(home, clock)

    def initialized(credential: AdminCredential) -> Event:
        return deployment.audit.event(
            "home.initialized",
            Actor("admin", "cli"),
            f"spiffe://{trust_domain}",
            Outcome.SUCCESS,
            details={
                "kid": kid,
                "admin_credential_id": credential.credential_id,
                "x509_ca_serial": format(ca.serial_number, "x"),
            },
        )

    try:  # the credential and home.initialized in one write: no unaudited admin
        token, _ = create_admin_credential(deployment.stores, deployment.clock, initialized)
    except BaseException:
        deployment.close()
        raise
    return deployment, token
