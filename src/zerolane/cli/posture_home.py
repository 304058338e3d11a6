"""What ``zerolane posture`` reads of a home: its stores (the workloads and the audit
log), its signing keys' manifest and its configuration files, into the inventory
(:mod:`zerolane.posture.inventory`) and the findings about them.

Only reads: no service of the home is built, nothing is written, and no secret file is
opened (a static credential is reported by where it is kept). The configuration files
read are ``zerolane.toml`` and the file of each enabled ``[[gateways]]`` entry; one that
does not parse is refused as ``zerolane up`` would refuse it. What runs in shadow mode
comes from them (``policy_mode``, each gateway route's mode) and from the stores (each
playbook's ``mode``, and the live tasks opened in shadow). The home's policy set
(``policy_dir``) is loaded as ``zerolane up`` loads it, and refused as it would be, to
compare its safety rules with the shipped ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from zerolane.config import CONFIG_NAME, Config, GatewayEntry, load_config
from zerolane.home import resolve_home
from zerolane.posture.config_findings import (
    ShadowPlaybook,
    ShadowRoutes,
    StaticCredential,
    UnmarkedRule,
    config_findings,
)
from zerolane.posture.findings import Finding
from zerolane.posture.inventory import Inventory, build_inventory
from zerolane.posture.inventory_findings import (
    DAY,
    InventoryRules,
    inventory_findings,
    signing_key_findings,
)
from zerolane.posture.report import Part
from zerolane.store.ports import Stores
from zerolane.tasks.playbooks import playbook_from_json
from zerolane.tasks.scope import Scope
from zerolane.tasks.views import MAX_SWEEP
from zerolane.types import Clock, SystemClock, TaskState

#: what an MCP server in shadow runs there unless a tool or prompt says otherwise
MCP_SERVER_DEFAULT = "its tools, prompts and resources by default"


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


def _gateway(home: Path, entry: GatewayEntry) -> tuple[list[StaticCredential], list[ShadowRoutes]]:
    """The static credentials of one gateway file, and what it runs in shadow."""
    path = entry.config_path(home)
    where = str(path)
    credentials: list[StaticCredential] = []
    shadows: list[ShadowRoutes] = []
    if entry.kind == "http":
        from zerolane.gateway.config import load_gateway_config

        http = load_gateway_config(path)
        for index, upstream in enumerate(http.upstreams):
            section = f"upstreams[{index}] ({upstream.name})"
            credential = upstream.credential
            if credential is not None and credential.type == "static":
                credentials.append(
                    StaticCredential(
                        where,
                        f"{section}.credential",
                        str(credential.secret_file) if credential.secret_file else None,
                        credential.secret_env,
                    )
                )
            routes = upstream.routes.routes()
            shadow = tuple(f"{r.method} {r.path}" for r in routes if r.shadow is not None)
            shadows.append(ShadowRoutes(where, section, shadow, len(routes)))
        return credentials, shadows
    from zerolane.gateway.mcp.config import load_gateway_config as load_mcp_config

    mcp = load_mcp_config(path)
    for index, server in enumerate(mcp.servers):
        section = f"servers[{index}] ({server.name})"
        static = server.credential
        if static is not None and static.type == "static":
            credentials.append(
                StaticCredential(
                    where,
                    f"{section}.credential",
                    str(static.secret_file) if static.secret_file else None,
                    static.secret_env,
                )
            )
        # a tool's or prompt's own mode wins over the server's
        named = [
            *(f"tool {name}" for name, tool in server.tools.items() if tool.mode == "shadow"),
            *(f"prompt {name}" for name, pr in server.prompts.items() if pr.mode == "shadow"),
        ]
        if server.mode == "shadow":
            named.insert(0, MCP_SERVER_DEFAULT)
        shadows.append(ShadowRoutes(where, section, tuple(named), None))
    return credentials, shadows


def gateway_facts(home: Path, config: Config) -> tuple[list[StaticCredential], list[ShadowRoutes]]:
    """The static downstream secrets of ``zerolane.toml`` and of its enabled gateways'
    files, and what those gateways run in shadow (``InvalidInput`` for a gateway file
    that cannot be read or parsed)."""
    found: list[StaticCredential] = []
    shadows: list[ShadowRoutes] = []
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
            credentials, routes = _gateway(home, entry)
            found += credentials
            shadows += routes
    return found, shadows


def _ids_by_file(directory: Path) -> dict[str, str]:
    """The @id of every policy of ``directory``, and the name of the file holding it."""
    import json

    import cedarpy

    from zerolane.policy.loader import read_directory

    where: dict[str, str] = {}
    for name, text in read_directory(directory).texts:
        found = json.loads(cedarpy.policies_to_json_str(text)).get("staticPolicies", {})
        # every policy has an @id: the set was loaded (load_snapshot) before this
        for policy in found.values():
            where[str(policy["annotations"]["id"])] = name
    return where


def unmarked_safety_rules(policies: Path) -> list[UnmarkedRule]:
    """Each safety rule zerolane ships marked ``@shadow("never")`` that the policy set
    in ``policies`` holds without the mark (``PolicyLoadError`` when that set does not
    load: refused as ``zerolane up`` would refuse it). A shipped rule the set does not
    hold at all is the home's choice, not reported."""
    from zerolane.policy.defaults import DEFAULT_POLICY_DIR
    from zerolane.policy.loader import load_snapshot

    home = load_snapshot(policies)
    shipped = load_snapshot(DEFAULT_POLICY_DIR)
    missing = sorted((shipped.shadow_never & set(home.policy_ids)) - home.shadow_never)
    if not missing:
        return []
    home_files = _ids_by_file(policies)
    shipped_files = _ids_by_file(DEFAULT_POLICY_DIR)
    # a file changed between the two reads is named by its directory
    return [
        UnmarkedRule(
            policy_id,
            str(policies / home_files.get(policy_id, "")),
            str(DEFAULT_POLICY_DIR / shipped_files[policy_id]),
        )
        for policy_id in missing
    ]


def shadow_playbooks(stores: Stores, now: float) -> list[ShadowPlaybook]:
    """Each playbook in ``mode: shadow``, and each one with live tasks opened in shadow
    (a task keeps the mode it was opened under), with how many such tasks are live (of
    the newest :data:`MAX_SWEEP` active and suspended tasks)."""
    live: dict[str, int] = {}
    for state in (TaskState.ACTIVE, TaskState.SUSPENDED):
        for task in stores.list_tasks(state=state, limit=MAX_SWEEP):
            if now < task.expires_at and Scope.from_json(task.scope).shadow:
                live[task.playbook] = live.get(task.playbook, 0) + 1
    modes = {
        record.name: playbook_from_json(record.document, f"stored playbook {record.name!r}").mode
        for record in stores.list_playbooks()
    }
    names = sorted(set(live) | {name for name, mode in modes.items() if mode == "shadow"})
    return [ShadowPlaybook(name, modes.get(name) == "shadow", live.get(name, 0)) for name in names]


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
    credentials, routes = gateway_facts(folder, config)
    unmarked = unmarked_safety_rules(folder / config.policy_dir)
    now = clock.now()
    stores = open_stores(config.store_url, base=folder)
    try:
        inventory = build_inventory(stores)
        playbooks = shadow_playbooks(stores, now)
    finally:
        stores.close()
    keyring = Keyring(folder / "keys", clock)
    active = keyring.active_kid()
    (info,) = [key for key in keyring.infos() if key.kid == active]
    findings = [
        *inventory_findings(inventory, rules, now),
        *signing_key_findings(info, rules, now),
        *config_findings(
            credentials,
            shadow_policies=str(folder / CONFIG_NAME) if config.policy_mode == "shadow" else None,
            playbooks=playbooks,
            routes=routes,
            unmarked=unmarked,
        ),
    ]
    return HomePosture(folder, inventory, rules, tuple(sorted(findings, key=Finding.sort_key)))


def home_part(posture: HomePosture) -> Part:
    """The home's findings as one part of a ``posture scan`` report."""
    return Part(posture.findings, (), {"workloads": len(posture.inventory.rows)})


def has_home(home: Path | None) -> bool:
    """Whether the home ``home`` names (or the default one) has a configuration."""
    return (resolve_home(home) / CONFIG_NAME).is_file()
