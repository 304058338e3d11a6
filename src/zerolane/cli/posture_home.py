"""What ``zerolane posture`` reads of a home: its stores (the workloads and the audit
log), its signing keys' manifest and its configuration files, into the inventory
(:mod:`zerolane.posture.inventory`) and the findings about them.

Only reads: no service of the home is built, nothing is written, and no secret file is
opened (a static credential is reported by where it is kept). The configuration files
read are ``zerolane.toml`` and the file of each enabled ``[[gateways]]`` entry; one that
does not parse is refused as ``zerolane up`` would refuse it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from zerolane.config import CONFIG_NAME, Config, GatewayEntry, load_config
from zerolane.home import resolve_home
from zerolane.posture.config_findings import StaticCredential, config_findings
from zerolane.posture.findings import Finding
from zerolane.posture.inventory import Inventory, build_inventory
from zerolane.posture.inventory_findings import (
    DAY,
    InventoryRules,
    inventory_findings,
    signing_key_findings,
)
from zerolane.posture.report import Part
from zerolane.types import Clock, SystemClock


@dataclass(frozen=True, slots=True)
class HomePosture:
    """A home's inventory, and the findings about it and its configuration."""

    home: Path
    inventory: Inventory
    rules: InventoryRules
    findings: tuple[Finding, ...]


def _where(home: Path, name: str | Path) -> str:
    path = Path(name)
    return str(path if path.is_absolute() else home / path)


def _gateway_credentials(home: Path, entry: GatewayEntry) -> Iterator[StaticCredential]:
    path = entry.config_path(home)
    if entry.kind == "http":
        from zerolane.gateway.config import load_gateway_config

        http = load_gateway_config(path)
        for index, upstream in enumerate(http.upstreams):
            credential = upstream.credential
            if credential is not None and credential.type == "static":
                yield StaticCredential(
                    str(path),
                    f"upstreams[{index}] ({upstream.name}).credential",
                    str(credential.secret_file) if credential.secret_file else None,
                    credential.secret_env,
                )
        return
    from zerolane.gateway.mcp.config import load_gateway_config as load_mcp_config

    mcp = load_mcp_config(path)
    for index, server in enumerate(mcp.servers):
        static = server.credential
        if static is not None and static.type == "static":
            yield StaticCredential(
                str(path),
                f"servers[{index}] ({server.name}).credential",
                str(static.secret_file) if static.secret_file else None,
                static.secret_env,
            )


def static_credentials(home: Path, config: Config) -> list[StaticCredential]:
    """The static downstream secrets of ``zerolane.toml`` and of its enabled gateways'
    files (``InvalidInput`` for a gateway file that cannot be read or parsed)."""
    found: list[StaticCredential] = []
    static = config.grants.static
    if static is not None:
        found.append(
            StaticCredential(
                str(home / CONFIG_NAME),
                "[grants.static]",
                _where(home, static.secret_file) if static.secret_file else None,
                static.secret_env,
            )
        )
    for entry in config.gateways:
        if entry.enabled:
            found.extend(_gateway_credentials(home, entry))
    return found


def home_posture(
    home: Path | None,
    *,
    dormant_after: float | None = None,
    clock: Clock | None = None,
) -> HomePosture:
    """Read the home at ``home`` (``--home``, else ``$ZEROLANE_HOME``, else
    ``./.zerolane``): ``home.missing`` when there is none. ``dormant_after`` (seconds)
    defaults to the home's ``[detection.dormant] days``."""
    from zerolane.identity.keyring import Keyring
    from zerolane.store.open import open_stores

    folder = resolve_home(home)
    config = load_config(folder)
    clock = clock or SystemClock()
    days = config.detection.dormant.days
    rules = InventoryRules(dormant_after=dormant_after or days * DAY)
    credentials = static_credentials(folder, config)
    stores = open_stores(config.store_url, base=folder)
    try:
        inventory = build_inventory(stores)
    finally:
        stores.close()
    now = clock.now()
    keyring = Keyring(folder / "keys", clock)
    active = keyring.active_kid()
    (info,) = [key for key in keyring.infos() if key.kid == active]
    findings = [
        *inventory_findings(inventory, rules, now),
        *signing_key_findings(info, rules, now),
        *config_findings(credentials),
    ]
    return HomePosture(folder, inventory, rules, tuple(sorted(findings, key=Finding.sort_key)))


def home_part(posture: HomePosture) -> Part:
    """The home's findings as one part of a ``posture scan`` report."""
    return Part(posture.findings, (), {"workloads": len(posture.inventory.rows)})


def has_home(home: Path | None) -> bool:
    """Whether the home ``home`` names (or the default one) has a configuration."""
    return (resolve_home(home) / CONFIG_NAME).is_file()
