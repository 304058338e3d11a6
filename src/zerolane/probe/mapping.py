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

from zerolane.frameworks import (
    CSA_MAESTRO,
    FRAMEWORKS,
    NIST_CSF_1_1,
    NIST_CSF_2,
    NIST_ZTA,
    OWASP_ASI,
    OWASP_NHI,
    Framework,
)
from zerolane.probe.model import Result

__all__ = ["FRAMEWORKS", "MAPPING", "Framework", "for_result", "for_scenario", "tags", "titled"]


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
