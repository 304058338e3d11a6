"""Findings about a home's configuration: the static downstream secrets it injects, and
what it runs in shadow mode.

A ``static`` credential (``[grants.static]`` in ``zerolane.toml``, an HTTP gateway
upstream's ``credential`` of type ``static``, an MCP gateway server's) is one secret
handed to every allowed request of every task: it never reaches the agent, but it lives
as long as nobody changes it and stands for every workload at once. Each one is a
``config.static_grant`` finding naming where the secret is kept (a file's path, an
environment variable's name), never the secret.

Shadow mode lets through what the policies deny (audited as a would-deny): the policy
set in shadow (``config.shadow_policies``, high: nothing the policies deny is refused),
a playbook in shadow or one whose live tasks were opened in shadow
(``config.shadow_playbook``), a gateway's routes in shadow (``config.shadow_route``).
Each is a trial that should end; left on, the grants it was to narrow are not enforced.

A home's policy set is a copy made when the home was created: one made before the
shipped safety rules were marked ``@shadow("never")`` (a deny they take part in is
never relaxed by shadow mode) still holds them unmarked, and there shadow mode relaxes
exfiltration and risk protection. Each such rule still present is named by one
``config.safety_rule_unmarked`` finding (high when something runs in shadow, else
medium); a shipped rule the home removed is its own policy choice, not this finding.

The configuration files are parsed at the edge (the CLI): this module receives only
descriptions (:class:`StaticCredential`, :class:`ShadowPlaybook`, :class:`ShadowRoutes`,
:class:`UnmarkedRule`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from zerolane.posture.findings import Finding, Severity

STATIC_GRANT = "config.static_grant"
SHADOW_POLICIES = "config.shadow_policies"
SHADOW_PLAYBOOK = "config.shadow_playbook"
SHADOW_ROUTE = "config.shadow_route"
SAFETY_RULE_UNMARKED = "config.safety_rule_unmarked"
#: the annotation that makes a forbid a safety rule shadow mode never relaxes
SHADOW_NEVER_MARK = '@shadow("never")'
#: NHI5 (Overprivileged NHI): in shadow, a workload may do whatever the policies deny
#: it; what it holds in effect is no longer its grants (a playbook's scope, a route's
#: policy) but everything it asks, and nothing is refused until enforcement is back
SHADOW_NHI = ("NHI5:2025",)
SHADOW_REMEDY = (
    "run 'zerolane report shadow' to see what would have been denied, fix the playbooks "
    "or policies it names, then set the mode to enforce{where}; see docs/policies.md "
    "(Shadow mode)"
)


@dataclass(frozen=True, slots=True)
class StaticCredential:
    """A static secret a configuration file injects: the file (``config``), where in it
    (``section``: ``[grants.static]``, ``upstreams[0] (billing).credential``) and where
    the secret is kept: exactly one of ``secret_file`` and ``secret_env``."""

    config: str
    section: str
    secret_file: str | None = None
    secret_env: str | None = None

    def __post_init__(self) -> None:
        if (self.secret_file is None) == (self.secret_env is None):
            raise ValueError("a static credential is kept in a file or an environment variable")

    @property
    def location(self) -> str:
        if self.secret_file is not None:
            return f"file {self.secret_file}"
        return f"environment variable {self.secret_env}"


def static_grant_finding(credential: StaticCredential) -> Finding:
    """The finding about one static credential."""
    # NHI7: it lives until someone changes it by hand; NHI9: every task of every
    # workload is handed the same secret; NHI2 too when it sits in the environment,
    # which child processes inherit and /proc/<pid>/environ and crash reports show
    nhi = ["NHI7:2025", "NHI9:2025"]
    if credential.secret_env is not None:
        nhi.append("NHI2:2025")
    return Finding(
        rule=STATIC_GRANT,
        title="Static downstream secret",
        severity=Severity.MEDIUM,
        nhi=tuple(sorted(nhi)),
        message=f"{credential.config} {credential.section} injects one static secret (kept "
        f"in {credential.location}) into every allowed request of every task",
        remedy="replace it with a grant broker that mints a credential per task and "
        "revokes it when the task ends: per-task HMAC API keys (credential type hmac, "
        "[grants.hmac]) or a PostgreSQL role per task ([grants.postgres]); see "
        "docs/grants.md",
        subject=f"{credential.config} {credential.section}",
        details={
            "config": credential.config,
            "section": credential.section,
            "secret_file": credential.secret_file,
            "secret_env": credential.secret_env,
        },
    )


@dataclass(frozen=True, slots=True)
class ShadowPlaybook:
    """A playbook that runs in shadow (``shadow``: its ``mode`` is ``shadow`` now) or
    whose ``live_tasks`` were opened while it was (a task keeps the mode it was opened
    under until it ends)."""

    name: str
    shadow: bool
    live_tasks: int


@dataclass(frozen=True, slots=True)
class ShadowRoutes:
    """What a gateway file (``config``) runs in shadow under one upstream or server
    (``section``: ``upstreams[0] (billing)``, ``servers[1] (files)``): ``routes`` names
    each (``GET /invoices/{id}``, ``tool delete``), out of ``total`` (None: not known
    from the file, as an MCP server's tools are listed by the server itself)."""

    config: str
    section: str
    routes: tuple[str, ...]
    total: int | None


def shadow_policies_finding(config: str) -> Finding:
    """The finding about a policy set in shadow (``policy_mode`` in ``config``)."""
    return Finding(
        rule=SHADOW_POLICIES,
        title="Policy set in shadow mode",
        severity=Severity.HIGH,
        nhi=SHADOW_NHI,
        message=f'{config} sets policy_mode = "shadow": nothing the policies deny is '
        "refused, for every task of every workload (only checks made in code and safety "
        'rules marked @shadow("never") still deny)',
        remedy=SHADOW_REMEDY.format(where=' (policy_mode = "enforce", or remove the line)'),
        subject=f"{config} policy_mode",
        details={"config": config, "policy_mode": "shadow"},
    )


def shadow_playbook_finding(playbook: ShadowPlaybook) -> Finding:
    """The finding about one playbook whose tasks run in shadow."""
    tasks = f"{playbook.live_tasks} live task{'' if playbook.live_tasks == 1 else 's'}"
    if playbook.shadow:
        message = (
            f"playbook {playbook.name} is in mode: shadow: what the policies deny its tasks "
            f"is let through ({tasks} in shadow now, and every task opened from it)"
        )
    else:
        message = (
            f"playbook {playbook.name} is enforced, but {tasks} opened while it was in "
            "shadow still run in shadow until they end"
        )
    return Finding(
        rule=SHADOW_PLAYBOOK,
        title="Playbook in shadow mode",
        severity=Severity.MEDIUM,
        nhi=SHADOW_NHI,
        message=message,
        remedy=SHADOW_REMEDY.format(
            where=" (mode: enforce in its file, then 'zerolane playbook apply'; tasks opened "
            "in shadow keep it until they end: 'zerolane task revoke' ends them now)"
        ),
        subject=f"playbook {playbook.name}",
        details={
            "playbook": playbook.name,
            "mode": "shadow" if playbook.shadow else "enforce",
            "live_tasks": playbook.live_tasks,
        },
    )


def shadow_route_finding(routes: ShadowRoutes) -> Finding:
    """The finding about the routes of one gateway upstream or server in shadow."""
    count = f"{len(routes.routes)} of {routes.total} routes" if routes.total else "routes"
    return Finding(
        rule=SHADOW_ROUTE,
        title="Gateway routes in shadow mode",
        severity=Severity.MEDIUM,
        nhi=SHADOW_NHI,
        message=f"{routes.config} {routes.section} runs {count} in shadow: what the policies "
        f"deny there is let through ({', '.join(routes.routes)})",
        remedy=SHADOW_REMEDY.format(where=' (mode = "enforce" in the gateway file)'),
        subject=f"{routes.config} {routes.section}",
        details={
            "config": routes.config,
            "section": routes.section,
            "routes": list(routes.routes),
            "total": routes.total,
        },
    )


@dataclass(frozen=True, slots=True)
class UnmarkedRule:
    """A safety rule zerolane ships marked ``@shadow("never")`` that a home's policy
    set holds unmarked: its ``policy_id``, the home's file that holds it (``file``) and
    the shipped file it comes from (``shipped``)."""

    policy_id: str
    file: str
    shipped: str


def safety_rule_unmarked_finding(rules: Iterable[UnmarkedRule], *, shadow: bool) -> Finding:
    """The finding about the home's unmarked safety rules (``shadow``: something runs
    in shadow mode in the home, so they are relaxed now)."""
    ordered = sorted(rules, key=lambda rule: (rule.file, rule.policy_id))
    ids = ", ".join(rule.policy_id for rule in ordered)
    files = sorted({rule.file for rule in ordered})
    shipped = sorted({rule.shipped for rule in ordered})
    now = (
        "something in this home runs in shadow mode, so they are relaxed now"
        if shadow
        else "nothing runs in shadow mode now, but any shadow trial would relax them"
    )
    return Finding(
        rule=SAFETY_RULE_UNMARKED,
        title="Safety rule not marked for shadow mode",
        # high when shadow mode is on: exfiltration after a sensitive read and a risky
        # task's requests are let through now; medium while it is only one switch away
        severity=Severity.HIGH if shadow else Severity.MEDIUM,
        # NHI5 (Overprivileged NHI), as the other shadow findings: a relaxed safety rule
        # lets a workload do what its grants were never meant to allow (send what it read
        # out, act while its risk is high)
        nhi=SHADOW_NHI,
        message=f"the home's policies hold the shipped safety rules {ids} without "
        f"{SHADOW_NEVER_MARK} ({', '.join(files)}): shadow mode relaxes a deny they "
        f"take part in, exfiltration and risk protection included; {now}",
        remedy=f"add {SHADOW_NEVER_MARK} on its own line under the @id of each of them, "
        f"or copy the shipped file ({', '.join(shipped)}) over yours if you never edited "
        "it; then 'zerolane policy check' and 'zerolane policy reload'; see "
        "docs/policies.md (Safety rules shadow mode never relaxes)",
        subject=", ".join(files),
        details={
            "policies": [rule.policy_id for rule in ordered],
            "files": files,
            "shipped": shipped,
            "shadow": shadow,
        },
    )


def config_findings(
    credentials: Iterable[StaticCredential],
    *,
    shadow_policies: str | None = None,
    playbooks: Iterable[ShadowPlaybook] = (),
    routes: Iterable[ShadowRoutes] = (),
    unmarked: Iterable[UnmarkedRule] = (),
) -> list[Finding]:
    """One ``config.static_grant`` finding per static credential, one finding for each
    thing run in shadow: the policy set (``shadow_policies``: the configuration file
    that says so), each playbook, each gateway upstream or server; and one
    ``config.safety_rule_unmarked`` finding naming every ``unmarked`` safety rule (high
    when any of those shadow findings is made)."""
    found = [static_grant_finding(credential) for credential in credentials]
    if shadow_policies is not None:
        found.append(shadow_policies_finding(shadow_policies))
    found += [shadow_playbook_finding(p) for p in playbooks if p.shadow or p.live_tasks]
    found += [shadow_route_finding(r) for r in routes if r.routes]
    rules = list(unmarked)
    if rules:
        shadow = any(f.rule != STATIC_GRANT for f in found)
        found.append(safety_rule_unmarked_finding(rules, shadow=shadow))
    return found
