"""A deployment: one zerolane home opened with its stores, keys, audit log and services.

This is where backends are chosen (from the config's store URL) and handed to the
core as ports; nothing below this layer knows which backend it runs on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from zerolane.audit.events import Actor
from zerolane.audit.log import AuditLog
from zerolane.config import CONFIG_NAME, Config, load_config, render_config
from zerolane.errors import InvalidInput
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
from zerolane.store.open import open_stores
from zerolane.store.ports import Stores
from zerolane.types import Clock, Outcome, SystemClock

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


@dataclass
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
    federation: Federation = field(kw_only=True)

    @classmethod
    def open(cls, home: Path, clock: Clock | None = None) -> Deployment:
        clock = clock or SystemClock()
        config = load_config(home)
        stores = open_stores(config.store_url, base=home)
        keyring = Keyring(home / "keys", clock)
        audit = AuditLog(stores, clock)
        registry = WorkloadRegistry(config.trust_domain, stores, stores, audit, clock)
        attestors = build_attestors(config, stores, clock, home)
        identity = IdentityService(
            trust_domain=config.trust_domain,
            keyring=keyring,
            workloads=stores,
            attestors=attestors,
            audit=audit,
            clock=clock,
            svid_config=config.svid,
        )
        join_tokens = JoinTokens(stores, registry, audit, clock)
        federation = Federation(stores, audit, clock, config.trust_domain)
        return cls(
            home,
            config,
            clock,
            stores,
            keyring,
            audit,
            registry,
            identity,
            join_tokens,
            attestors,
            federation=federation,
        )

    def rotate_keys(self, actor: Actor) -> str:
        return rotate_keys(
            self.keyring, self.audit, publish_for=self.config.max_token_lifetime, actor=actor
        )

    def close(self) -> None:
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
    config = Config(trust_domain=trust_domain)
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
