"""A shadow allow in OCSF: let through (Allowed), and said to be a shadow one in its
authorizations; its would-deny reasons and modes kept in ``unmapped``."""

from __future__ import annotations

from tests.audit.test_ocsf import decision


def test_a_shadow_allow_is_allowed_and_says_shadow() -> None:
    details = {
        "decision": "shadow",
        "policies": ["scope.action"],
        "would_deny": ["scope.action"],
        "shadow": ["route:finance DELETE /reports/{id}"],
        "action": "delete",
    }
    ocsf = decision(details)
    assert (ocsf["disposition_id"], ocsf["action_id"]) == (1, 1)
    assert ocsf["authorizations"] == [
        {"decision": "shadow", "policy": {"uid": "scope.action", "name": "scope.action"}}
    ]
    assert ocsf["unmapped"]["would_deny"] == ["scope.action"]
    assert ocsf["unmapped"]["shadow"] == ["route:finance DELETE /reports/{id}"]
    # the twin: the same request denied is blocked, its authorization a deny
    denied = decision({**details, "decision": "deny"})
    assert (denied["disposition_id"], denied["authorizations"][0]["decision"]) == (2, "deny")
