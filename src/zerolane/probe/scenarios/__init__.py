"""Every scenario the probe knows, in the order it runs them (one module per family).

A scenario's id is stable: reports, ``--only`` and the framework mapping
(:mod:`zerolane.probe.mapping`) name it.
"""

from __future__ import annotations

from zerolane.probe.model import Scenario
from zerolane.probe.scenarios import delegation, lifecycle, limits, mcp, paths, proof, tokens

CATALOG: tuple[Scenario, ...] = (
    *proof.SCENARIOS,
    *lifecycle.SCENARIOS,
    *delegation.SCENARIOS,
    *tokens.SCENARIOS,
    *paths.SCENARIOS,
    *limits.SCENARIOS,
    *mcp.SCENARIOS,
)


def by_id() -> dict[str, Scenario]:
    return {scenario.id: scenario for scenario in CATALOG}
