"""What each probe scenario tests, in the terms security teams report against.

One table, :data:`MAPPING`, gives every scenario id the ids of six frameworks
(:data:`FRAMEWORKS`, with their names and the title of every id in one place): the OWASP
Non-Human Identities Top 10 (2025), the OWASP Top 10 for Agentic Applications (2026),
the tenets of NIST SP 800-207 (section 2.1), the layers of CSA MAESTRO, NIST CSF 2.0
(PR.AA) and CSF 1.1 (PR.AC). The reports (JSON, SARIF, HTML) read it through
:func:`for_result`; ``docs/mapping.md`` is :func:`render_markdown`'s output, regenerated
with ``python -m zerolane.probe.mapping > docs/mapping.md``.

A scenario maps to what its failure would show: a replayed proof that works is insecure
authentication (NHI4) and a channel an attacker can replay into (ASI07); a token still
good after its task was revoked is improper offboarding (NHI1) and a long-lived secret
(NHI7).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from zerolane.probe.model import Result


@dataclass(frozen=True)
class Framework:
    """One framework: a key (as in the reports), its name, where it is published, and
    the title of each of its ids, in its own order."""

    key: str
    name: str
    short: str  # the column heading in docs/mapping.md
    url: str
    entries: Mapping[str, str]


OWASP_NHI = Framework(
    key="owasp-nhi-2025",
    name="OWASP Non-Human Identities Top 10 (2025)",
    short="OWASP NHI",
    url="https://owasp.org/www-project-non-human-identities-top-10/2025/top-10-2025/",
    entries={
        "NHI1:2025": "Improper Offboarding",
        "NHI2:2025": "Secret Leakage",
        "NHI3:2025": "Vulnerable Third-Party NHI",
        "NHI4:2025": "Insecure Authentication",
        "NHI5:2025": "Overprivileged NHI",
        "NHI6:2025": "Insecure Cloud Deployment Configurations",
        "NHI7:2025": "Long-Lived Secrets",
        "NHI8:2025": "Environment Isolation",
        "NHI9:2025": "NHI Reuse",
        "NHI10:2025": "Human Use of NHI",
    },
)
OWASP_ASI = Framework(
    key="owasp-asi-2026",
    name="OWASP Top 10 for Agentic Applications (2026)",
    short="OWASP Agentic",
    url="https://genai.owasp.org/resource/owasp-top-10-for-agentic-applications-for-2026/",
    entries={
        "ASI01": "Agent Goal Hijack",
        "ASI02": "Tool Misuse and Exploitation",
        "ASI03": "Identity and Privilege Abuse",
        "ASI04": "Agentic Supply Chain Vulnerabilities",
        "ASI05": "Unexpected Code Execution (RCE)",
        "ASI06": "Memory & Context Poisoning",
        "ASI07": "Insecure Inter-Agent Communication",
        "ASI08": "Cascading Failures",
        "ASI09": "Human-Agent Trust Exploitation",
        "ASI10": "Rogue Agents",
    },
)
NIST_ZTA = Framework(
    key="nist-sp-800-207",
    name="NIST SP 800-207 Zero Trust Architecture, tenets (section 2.1)",
    short="SP 800-207",
    url="https://csrc.nist.gov/pubs/sp/800/207/final",
    entries={
        "T1": "All data sources and computing services are considered resources",
        "T2": "All communication is secured regardless of network location",
        "T3": "Access to individual enterprise resources is granted on a per-session basis",
        "T4": "Access to resources is determined by dynamic policy",
        "T5": "The enterprise monitors and measures the integrity and security posture of "
        "all owned and associated assets",
        "T6": "All resource authentication and authorization are dynamic and strictly "
        "enforced before access is allowed",
        "T7": "The enterprise collects as much information as possible about the current "
        "state of assets, network infrastructure and communications and uses it to "
        "improve its security posture",
    },
)
CSA_MAESTRO = Framework(
    key="csa-maestro",
    name="CSA MAESTRO agentic AI threat modeling, layers (2025, seven layers)",
    short="MAESTRO",
    url="https://cloudsecurityalliance.org/blog/2025/02/06/agentic-ai-threat-modeling-framework-maestro",
    entries={
        "L1": "Foundation Models",
        "L2": "Data Operations",
        "L3": "Agent Frameworks",
        "L4": "Deployment and Infrastructure",
        "L5": "Evaluation and Observability",
        "L6": "Security and Compliance",
        "L7": "Agent Ecosystem",
    },
)
NIST_CSF_2 = Framework(
    key="nist-csf-2.0",
    name="NIST Cybersecurity Framework 2.0, Identity Management, Authentication, and "
    "Access Control (PR.AA)",
    short="CSF 2.0",
    url="https://nvlpubs.nist.gov/nistpubs/CSWP/NIST.CSWP.29.pdf",
    entries={
        "PR.AA-01": "Identities and credentials for authorized users, services, and "
        "hardware are managed by the organization",
        "PR.AA-02": "Identities are proofed and bound to credentials based on the context "
        "of interactions",
        "PR.AA-03": "Users, services, and hardware are authenticated",
        "PR.AA-04": "Identity assertions are protected, conveyed, and verified",
        "PR.AA-05": "Access permissions, entitlements, and authorizations are defined in a "
        "policy, managed, enforced, and reviewed, and incorporate the principles of least "
        "privilege and separation of duties",
        "PR.AA-06": "Physical access to assets is managed, monitored, and enforced "
        "commensurate with risk",
    },
)
NIST_CSF_1_1 = Framework(
    key="nist-csf-1.1",
    name="NIST Cybersecurity Framework 1.1, Identity Management, Authentication and "
    "Access Control (PR.AC)",
    short="CSF 1.1",
    url="https://nvlpubs.nist.gov/nistpubs/CSWP/NIST.CSWP.04162018.pdf",
    entries={
        "PR.AC-1": "Identities and credentials are issued, managed, verified, revoked, and "
        "audited for authorized devices, users and processes",
        "PR.AC-2": "Physical access to assets is managed and protected",
        "PR.AC-3": "Remote access is managed",
        "PR.AC-4": "Access permissions and authorizations are managed, incorporating the "
        "principles of least privilege and separation of duties",
        "PR.AC-5": "Network integrity is protected",
        "PR.AC-6": "Identities are proofed and bound to credentials and asserted in interactions",
        "PR.AC-7": "Users, devices, and other assets are authenticated commensurate with "
        "the risk of the transaction",
    },
)
#: every framework, in the order the reports and docs/mapping.md show them
FRAMEWORKS: tuple[Framework, ...] = (
    OWASP_NHI,
    OWASP_ASI,
    NIST_ZTA,
    CSA_MAESTRO,
    NIST_CSF_2,
    NIST_CSF_1_1,
)

#: one scenario's ids, framework key -> ids (in the framework's order)
ScenarioMapping = Mapping[str, tuple[str, ...]]


def _m(
    nhi: str, asi: str, zta: str, maestro: str, csf2: str, csf11: str
) -> dict[str, tuple[str, ...]]:
    """One row: each argument holds a framework's ids separated by spaces (NHI and
    ASI numbers without their prefix and year, ``"2 4"`` is NHI2:2025 and NHI4:2025)."""
    return {
        OWASP_NHI.key: tuple(f"NHI{n}:2025" for n in nhi.split()),
        OWASP_ASI.key: tuple(f"ASI{int(n):02d}" for n in asi.split()),
        NIST_ZTA.key: tuple(f"T{n}" for n in zta.split()),
        CSA_MAESTRO.key: tuple(f"L{n}" for n in maestro.split()),
        NIST_CSF_2.key: tuple(f"PR.AA-{int(n):02d}" for n in csf2.split()),
        NIST_CSF_1_1.key: tuple(f"PR.AC-{n}" for n in csf11.split()),
    }


#: a sender-constrained token used without its key, or a proof used twice or elsewhere
_PROOF = _m("4", "7", "3 6", "6", "3 4", "7")
#: a forged or tampered token the target should not verify
_FORGED = _m("4", "3", "6", "6", "3 4", "1 7")
#: a key or certificate fetched from where the token says: the target's network reached
_FETCHED = _m("4", "3", "2 6", "4 6", "3 4", "1 7")
#: a request the policy denies, dressed up so that the enforcement point misreads it
_CONFUSED = _m("5", "2 3", "4 6", "4 6", "5", "4")

#: scenario id -> its ids in every framework
MAPPING: Mapping[str, ScenarioMapping] = {
    # sender constraint: a stolen token alone must not work
    "token.no_proof": _m("2 4", "3", "6", "6", "3 4", "6 7"),
    "token.replayed_elsewhere": _m("2 4", "3 7", "2 6", "4 6", "3 4", "6 7"),
    "proof.replayed": _PROOF,
    "proof.other_key": _m("2 4", "3", "6", "6", "3 4", "6 7"),
    "proof.other_method": _PROOF,
    "proof.other_url": _PROOF,
    "proof.stale_iat": _PROOF,
    "proof.future_iat": _PROOF,
    # lifecycle: a credential ends with its task
    "task.reused_after_completion": _m("1 7", "3", "3 6", "6", "1 5", "1 4"),
    "task.reused_after_revocation": _m("1 7", "3 10", "3 6", "6", "1 5", "1 4"),
    "task.reused_across_tasks": _m("5 9", "3", "3 4 6", "6", "5", "4"),
    # delegation: never wider than its parent, never longer
    "delegation.wider_than_parent": _m("5", "3 7", "4 6", "6 7", "5", "4"),
    "delegation.child_after_parent": _m("1 7", "3 7", "3 6", "6 7", "1 5", "1 4"),
    # token validation
    "token.expired": _m("7", "3", "3 6", "6", "3 4", "1 7"),
    "token.nbf_future": _m("4", "3", "3 6", "6", "4", "7"),
    "token.wrong_audience": _m("4 9", "3", "1 6", "6", "4 5", "4 7"),
    "token.passthrough": _m("2 5", "3", "1 2", "4 6", "4 5", "4"),
    "token.alg_none": _FORGED,
    "token.hs256_public_key": _FORGED,
    "token.jwk_injection": _FORGED,
    "token.jku_injection": _FETCHED,
    "token.x5u_injection": _FETCHED,
    "token.kid_traversal": _m("4", "3", "6", "4 6", "3 4", "1 7"),
    # the enforcement point reads the request as the upstream will
    "path.encoded_dots": _CONFUSED,
    "path.encoded_slash": _CONFUSED,
    "path.semicolon": _CONFUSED,
    "path.backslash": _CONFUSED,
    "path.double_encoding": _CONFUSED,
    "method.override": _CONFUSED,
    # what the enforcement point cannot read whole it refuses (never forwards undecided)
    "limits.oversized_headers": _m("4", "8", "6", "4", "5", "4"),
    "limits.oversized_body": _m("4", "8", "6", "4", "5", "4"),
    # MCP: the task's tools only, and only those shown
    "mcp.tool_outside_task": _m("5", "2 3", "4 6", "3 6", "5", "4"),
    "mcp.tools_list_filtered": _m("5", "2", "4", "3 6", "5", "4"),
}


def for_scenario(scenario: str) -> ScenarioMapping:
    """The ids ``scenario`` maps to (every framework, empty where none); a scenario
    the table does not know maps to nothing (its report still renders)."""
    return MAPPING.get(scenario, {framework.key: () for framework in FRAMEWORKS})


def for_result(result: Result) -> ScenarioMapping:
    """The ids a result (a finding when it failed) carries: its scenario's."""
    return for_scenario(result.scenario)


def titled(scenario: str) -> list[tuple[Framework, str, str]]:
    """``scenario``'s ids with their framework and title, in the frameworks' order."""
    mapped = for_scenario(scenario)
    return [
        (framework, entry, framework.entries[entry])
        for framework in FRAMEWORKS
        for entry in mapped.get(framework.key, ())
    ]


def tags(scenario: str) -> list[str]:
    """``scenario``'s ids as flat tags (``NHI4:2025``, ``ASI07``, ``SP800-207:T6``,
    ``MAESTRO:L6``, ``CSF2:PR.AA-04``, ``CSF1.1:PR.AC-7``): the OWASP ids name their
    list already, the others get a prefix so that a tag alone says what it is."""
    prefix = {
        OWASP_NHI.key: "",
        OWASP_ASI.key: "",
        NIST_ZTA.key: "SP800-207:",
        CSA_MAESTRO.key: "MAESTRO:",
        NIST_CSF_2.key: "CSF2:",
        NIST_CSF_1_1.key: "CSF1.1:",
    }
    return [f"{prefix[framework.key]}{entry}" for framework, entry, _ in titled(scenario)]


def _cell(scenario: str, framework: Framework) -> str:
    return ", ".join(for_scenario(scenario).get(framework.key, ()))


def render_markdown() -> str:
    """``docs/mapping.md``: the table of every scenario's ids, then each framework's
    ids with their titles."""
    lines = [
        "# Probe findings mapped to frameworks",
        "",
        "<!-- Generated from src/zerolane/probe/mapping.py: do not edit by hand. -->",
        "",
        "Every scenario of `zerolane probe` ([probe.md](probe.md)) carries the ids below in",
        "its reports (JSON `mapping`, SARIF rule `properties.tags`, the HTML report), so a",
        "failed attack reads as a finding against the framework a team reports to. This",
        "page is generated from the same table the probe uses",
        "(`src/zerolane/probe/mapping.py`); after changing it, regenerate the page with",
        "`.venv/bin/python -m zerolane.probe.mapping > docs/mapping.md` (a test checks that",
        "the page and the table agree).",
        "",
        "A scenario maps to what its failure would show. A proof that can be replayed is",
        "insecure authentication and a replayable channel; a token still accepted after",
        "its task was revoked is improper offboarding and a long-lived secret; a path",
        "trick that reaches a denied route is privilege abuse at the enforcement point.",
        "",
        "## Scenarios",
        "",
        "| Scenario | " + " | ".join(f.short for f in FRAMEWORKS) + " |",
        "|" + "---|" * (len(FRAMEWORKS) + 1),
    ]
    for scenario in MAPPING:
        cells = " | ".join(_cell(scenario, f) for f in FRAMEWORKS)
        lines.append(f"| `{scenario}` | {cells} |")
    lines += ["", "## Frameworks", ""]
    for framework in FRAMEWORKS:
        lines += [
            f"### {framework.name}",
            "",
            f"Key in the reports: `{framework.key}`. Source: <{framework.url}>",
            "",
            "| Id | Title | Scenarios |",
            "|---|---|---|",
        ]
        for entry, title in framework.entries.items():
            using = [s for s, mapped in MAPPING.items() if entry in mapped[framework.key]]
            named = ", ".join(f"`{s}`" for s in using) or "(none: outside what the probe tests)"
            lines.append(f"| {entry} | {title} | {named} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":  # the page's regeneration command
    print(render_markdown(), end="")
