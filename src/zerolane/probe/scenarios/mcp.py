"""MCP tools outside the task: can the credential call a tool it was not given, and
does ``tools/list`` show it?

Both open a session of their own at the profile's MCP endpoint (streamable HTTP,
:mod:`zerolane.probe.mcp_wire`). A refused ``tools/call`` is a JSON-RPC error or an HTTP
refusal (4xx). A result with ``isError: true`` counts as refused only when its text
says so (denied, forbidden, not allowed, unauthorized, permission, refused, outside the
task): any other tool error means the call reached the tool, which then failed on its
own, so the attack was accepted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from zerolane.probe.context import ProbeContext
from zerolane.probe.mcp_wire import McpClient, error_text
from zerolane.probe.model import Exchange, Need, Outcome, Result, Scenario
from zerolane.probe.profile import McpProfile

#: what a tool error says when it is a refusal, not the tool failing
REFUSAL_WORDS = re.compile(
    r"\b(denied|deny|forbidden|not (allowed|permitted|authori[sz]ed)|unauthori[sz]ed"
    r"|permission|refused|outside (the|its|this) (task|scope))\b",
    re.IGNORECASE,
)


def _text(result: dict[str, Any]) -> str:
    content = result.get("content")
    parts = content if isinstance(content, list) else []
    return " ".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))


def _failed(answer: dict[str, Any] | None) -> bool:
    """A tool result that says the tool failed (``isError: true``)."""
    result = answer.get("result") if answer is not None else None
    return isinstance(result, dict) and result.get("isError") is True


def verdict(exchange: Exchange, answer: dict[str, Any] | None) -> str:
    """``accepted`` (the tool ran), ``refused`` or ``unclear`` (a success without a
    readable answer to the call)."""
    if not exchange.accepted:
        return "refused"
    if answer is not None and "error" in answer:
        return "refused"
    result = answer.get("result") if answer is not None else None
    if not isinstance(result, dict):
        return "unclear"
    if result.get("isError") is True and REFUSAL_WORDS.search(_text(result)):
        return "refused"
    return "accepted"


def _profile(context: ProbeContext) -> McpProfile:
    mcp = context.profile.mcp
    if mcp is None:  # the runner checked Need.MCP
        raise ValueError("the target has no MCP endpoint")
    return mcp


def _tool_outside_task(context: ProbeContext) -> Result:
    mcp = _profile(context)
    client = McpClient(context, context.fresh(), mcp.path)
    try:
        return _call_outside(client, mcp)
    finally:
        client.close()


def _call_outside(client: McpClient, mcp: McpProfile) -> Result:
    scenario = "mcp.tool_outside_task"
    setup, failed = client.open()
    if failed is not None:
        return Result(scenario, Outcome.INCONCLUSIVE, failed, tuple(setup))
    twin, allowed = client.request(
        "twin", "tools/call", {"name": mcp.allowed_tool, "arguments": mcp.allowed_arguments}
    )
    attack, forbidden = client.request(
        "attack", "tools/call", {"name": mcp.forbidden_tool, "arguments": mcp.forbidden_arguments}
    )
    kept = (*setup, twin, attack)
    if verdict(twin, allowed) != "accepted" or _failed(allowed):
        why = f"status {twin.status}" if twin.status is not None else twin.error
        if allowed is not None and "error" in allowed:
            why = f"JSON-RPC error {error_text(allowed, client.mask)}"
        elif allowed is not None and isinstance(allowed.get("result"), dict):
            why = "a tool error"
        elif twin.accepted:
            why = "no result"
        return Result(
            scenario,
            Outcome.INCONCLUSIVE,
            f"the allowed tool {mcp.allowed_tool!r} could not be called ({why}): nothing is "
            "known about the attack",
            kept,
        )
    found = verdict(attack, forbidden)
    if found == "unclear":
        return Result(
            scenario,
            Outcome.INCONCLUSIVE,
            f"the call of {mcp.forbidden_tool!r} was answered {attack.status} with no "
            "readable JSON-RPC answer: whether the tool ran is unknown",
            kept,
        )
    if found == "accepted":
        return Result(
            scenario,
            Outcome.FAIL,
            f"the call of {mcp.forbidden_tool!r} was accepted: the tool ran "
            f"(status {attack.status})",
            kept,
        )
    if not attack.accepted:
        how = attack.error if attack.status is None else f"status {attack.status}"
    elif forbidden is not None and "error" in forbidden:
        how = f"JSON-RPC error {error_text(forbidden, client.mask)}"
    else:
        how = "a tool error that says it was refused"
    return Result(scenario, Outcome.PASS, f"refused ({how})", kept)


def _tools_list_filtered(context: ProbeContext) -> Result:
    mcp = _profile(context)
    client = McpClient(context, context.credential(), mcp.path)
    try:
        return _listing(client, mcp)
    finally:
        client.close()


def _listing(client: McpClient, mcp: McpProfile) -> Result:
    scenario = "mcp.tools_list_filtered"
    setup, failed = client.open()
    if failed is not None:
        return Result(scenario, Outcome.INCONCLUSIVE, failed, tuple(setup))
    listing, names = client.tools("attack")
    kept = (*setup, *listing)
    if names is None or mcp.allowed_tool not in names:
        shown = "no listing" if names is None else f"{len(names)} tools, not it"
        return Result(
            scenario,
            Outcome.INCONCLUSIVE,
            f"tools/list does not show the allowed tool {mcp.allowed_tool!r} ({shown}): "
            "nothing is known about the filter",
            kept,
        )
    if mcp.forbidden_tool in names:
        return Result(
            scenario,
            Outcome.FAIL,
            f"tools/list shows {mcp.forbidden_tool!r}, which the credential may not call "
            f"({len(names)} tools listed)",
            kept,
        )
    return Result(
        scenario,
        Outcome.PASS,
        f"tools/list shows {mcp.allowed_tool!r} and not {mcp.forbidden_tool!r} "
        f"({len(names)} tools listed)",
        kept,
    )


SCENARIOS: Sequence[Scenario] = (
    Scenario(
        id="mcp.tool_outside_task",
        title="MCP tool outside the task",
        attack="Call (tools/call) a tool the credential was not given, after calling the "
        "one it was.",
        expect="Refused: a JSON-RPC error or an HTTP 401/403, and the tool never runs.",
        surface="mcp",
        run=_tool_outside_task,
        needs=frozenset({Need.MCP}),
    ),
    Scenario(
        id="mcp.tools_list_filtered",
        title="tools/list shows tools outside the task",
        attack="List the tools (tools/list, every page) and look for one the credential may "
        "not call.",
        expect="Only what the credential may call is listed: the allowed tool, not the "
        "forbidden one.",
        surface="mcp",
        run=_tools_list_filtered,
        needs=frozenset({Need.MCP}),
    ),
)
