"""``GET /v1/admin/reports/shadow``: what shadow mode let through that enforcement would
have denied, grouped by reason, for the dashboard and for scripts (the JSON of
``zerolane report shadow --json``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from zerolane.audit.shadow import shadow_report
from zerolane.server.deployment import Deployment
from zerolane.server.security import Admin

router = APIRouter(tags=["admin"])
DAY = 86400
#: the longest period a report reads back (as ``zerolane report shadow --since``)
MAX_SINCE = 366 * DAY


@router.get("/v1/admin/reports/shadow")
def shadow(
    request: Request,
    _: Admin,
    since: Annotated[int, Query(ge=1, le=MAX_SINCE, description="seconds back")] = DAY,
) -> dict[str, Any]:
    """The shadow allows of the last ``since`` seconds (default a day), grouped by the
    reason enforcement would have denied them for, the most frequent first: count,
    tasks, playbooks, modes (``policies``, ``playbook:<name>``, ``route:<name>``), the
    policies, a few examples, first and last seen."""
    deployment: Deployment = request.app.state.deployment
    now = deployment.clock.now()
    return shadow_report(deployment.stores, now - since, now).as_json()
