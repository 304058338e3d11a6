"""The frameworks zerolane's findings are reported against, and the title of each id.

The probe (:mod:`zerolane.probe.mapping`: which scenario maps to which ids) and posture
(:mod:`zerolane.posture`: which finding maps to which OWASP NHI ids) both read these
tables, so an id and its title are written once: the OWASP Non-Human Identities Top 10
(2025), the OWASP Top 10 for Agentic Applications (2026), the tenets of NIST SP 800-207
(section 2.1), the layers of CSA MAESTRO, NIST CSF 2.0 (PR.AA) and CSF 1.1 (PR.AC).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


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
