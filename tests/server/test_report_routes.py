"""``GET /v1/admin/reports/shadow``: admins only; the would-denies of the period by
reason; a bad ``since`` is a 400 with its reason."""

from __future__ import annotations

from pathlib import Path

from tests.audit.conftest import NOW, FixedClock
from tests.audit.test_shadow import AGENT, ROUTE, shadow_details
from tests.server.conftest import Api, serving
from zerolane.types import Outcome

PATH = "/v1/admin/reports/shadow"


def test_the_shadow_report_of_a_period_for_admins_only(tmp_path: Path) -> None:
    clock = FixedClock(NOW)
    with serving(tmp_path / "home", clock) as api:
        api.deployment.audit.record(
            "decision",
            actor=AGENT,
            subject="t1",
            outcome=Outcome.SUCCESS,
            reason="shadow",
            details=shadow_details(["scope.action"]),
        )
        clock.t = NOW + 100
        shown = api.client.get(PATH, headers=api.auth)
        assert shown.status_code == 200, shown.text
        body = shown.json()
        assert body["total"] == 1
        [group] = body["reasons"]
        assert (group["reason"], group["count"], group["modes"]) == ("scope.action", 1, [ROUTE])
        # a period that starts after it: nothing in it
        later = api.client.get(PATH, params={"since": 50}, headers=api.auth)
        assert (later.json()["total"], later.json()["reasons"]) == (0, [])
        # the twin: no admin credential, refused
        refused = api.client.get(PATH)
        assert refused.status_code == 401
        assert refused.json()["reason"].startswith("admin.")


def test_a_bad_since_is_refused(api: Api) -> None:
    for since in ("0", "x", str(400 * 86400)):
        refused = api.client.get(PATH, params={"since": since}, headers=api.auth)
        assert refused.status_code == 400, refused.text
        assert refused.json()["reason"] == "request.invalid"
