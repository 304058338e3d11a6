"""What every SARIF 2.1.0 log zerolane writes shares (``zerolane probe --sarif``,
``zerolane posture scan --sarif``): the version, the schema's address, rule names."""

from __future__ import annotations

VERSION = "2.1.0"
SCHEMA_URI = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)


def rule_name(rule_id: str) -> str:
    """``proof.other_key`` -> ``ProofOtherKey`` (SARIF's rule names are identifiers)."""
    return "".join(part.capitalize() for part in rule_id.replace(".", "_").split("_"))
