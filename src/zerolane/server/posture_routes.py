"""``GET /v1/admin/posture/inventory``: the NHI inventory of this deployment, for the
dashboard and for scripts (the JSON of ``zerolane posture inventory --json``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from zerolane.posture.findings import Finding
from zerolane.posture.inventory import build_inventory
from zerolane.posture.inventory_findings import (
    DAY,
    InventoryRules,
    inventory_findings,
    signing_key_findings,
)
from zerolane.posture.report_json import finding_json
from zerolane.server.deployment import Deployment
from zerolane.server.security import Admin

router = APIRouter(tags=["admin"])
#: the longest ``dormant_after_days`` (ten years, as ``[detection.dormant] days``)
MAX_DAYS = 3650


def _deployment(request: Request) -> Deployment:
    deployment: Deployment = request.app.state.deployment
    return deployment


@router.get("/v1/admin/posture/inventory")
def posture_inventory(
    request: Request,
    _: Admin,
    dormant_after_days: Annotated[float | None, Query(gt=0, le=MAX_DAYS)] = None,
) -> dict[str, Any]:
    """Every workload with its owner, status, attestation, last seen, tasks, playbooks
    and keys, and the findings about them and the signing key (``dormant_after_days``
    defaults to ``[detection.dormant] days``). Reads the whole audit log: slow on a
    large one."""
    deployment = _deployment(request)
    days = dormant_after_days or deployment.config.detection.dormant.days
    rules = InventoryRules(dormant_after=days * DAY)
    inventory = build_inventory(deployment.stores)
    now = deployment.clock.now()
    active = deployment.keyring.active_kid()
    (key,) = [info for info in deployment.keyring.infos() if info.kid == active]
    findings = [
        *inventory_findings(inventory, rules, now),
        *signing_key_findings(key, rules, now),
    ]
    findings.sort(key=Finding.sort_key)
    return {
        **inventory.as_json(),
        "dormant_after_days": days,
        "findings": [finding_json(finding) for finding in findings],
    }
