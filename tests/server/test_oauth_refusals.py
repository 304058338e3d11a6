"""The OAuth endpoints' refusals are audited at the gateways' bounded rate (security
review of issue 13): a flood of refused sign-ins or of token requests naming a client
that is refused writes a burst, then counts what it does not write and hands the
count to the next event written; the person or client with the right credentials
still gets through, audited as before."""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from tests.clocks import AheadClock
from tests.server import test_oauth_throttle as throttle
from tests.server.oauth_fixtures import PASSWORD, USER, pkce, query_of
from tests.server.test_oauth_routes import Flow
from tests.server.test_oauth_throttle import _attempt

#: ``[audit] refusals_burst`` of a new home
BURST = 20


#: the consent page's flow, on a clock the test moves
clock, flow = throttle.clock, throttle.flow


def _events(flow: Flow, kind: str) -> list[dict[str, Any]]:
    flow.deployment.refusals.flush(10)
    bodies = [json.loads(r.body) for r in flow.deployment.stores.read_events(0, 100_000)]
    return [b for b in bodies if b["kind"] == kind]


def test_a_flood_of_locked_out_sign_ins_writes_a_burst_and_counts_the_rest(
    flow: Flow, clock: AheadClock
) -> None:
    client_id = flow.register()["client_id"]
    page = flow.person.open_page(flow.authorize_url(client_id, pkce()[1]))
    for _ in range(5):  # guesses: heard, refused, each audited
        assert _attempt(flow, page, USER, "a guess, wrong").status_code == 401
    before = flow.deployment.refusals.suppressed
    for _ in range(BURST + 15):  # the flood: the name is locked, every attempt refused
        locked = _attempt(flow, page, USER, PASSWORD)
        assert locked.status_code == 429
        assert "location" not in locked.headers
    assert flow.deployment.refusals.suppressed == before + 15
    clock.ahead += 1  # a token back in the bucket; the lock (30 s) still on
    assert _attempt(flow, page, USER, PASSWORD).status_code == 429
    denied = [e for e in _events(flow, "oauth.sign_in") if e["outcome"] == "denied"]
    assert [e["reason"] for e in denied] == ["oauth.sign_in"] * 5 + ["oauth.sign_in_throttled"] * (
        BURST + 1
    )
    assert [e["details"]["suppressed"] for e in denied[-2:]] == [0, 15]  # the count, carried
    last = denied[-1]
    assert last["actor"] == {"type": "user", "id": "unauthenticated"}
    assert last["subject"] == client_id
    assert {k: last["details"][k] for k in ("listener", "method", "path", "status")} == {
        "listener": "oauth",
        "method": "POST",
        "path": "/oauth/authorize",
        "status": 429,
    }
    assert last["details"]["client"] == "testclient"  # the TCP peer's address
    assert "password" not in json.dumps(denied)
    # the legitimate twin: the lock over, the person signs in and gets a code
    clock.ahead += 31
    right = _attempt(flow, page, USER, PASSWORD)
    assert right.status_code == 303, right.text
    assert "code" in query_of(right.headers["location"])
    assert [e["outcome"] for e in _events(flow, "oauth.consented")] == ["success"]


def test_a_flood_of_token_requests_naming_a_refused_client(flow: Flow) -> None:
    url = "https://10.0.0.1/client.json"  # refused before any fetch: not a global address
    before = flow.deployment.refusals.suppressed
    data = {"grant_type": "authorization_code", "code": "x", "code_verifier": "v" * 43}
    for _ in range(BURST + 10):
        reply = flow.client.post("/oauth/token", data={**data, "client_id": url})
        assert (reply.status_code, reply.json()["reason"]) == (401, "oauth.client_metadata_address")
    refused = [e for e in _events(flow, "oauth.client_registered") if e["outcome"] == "denied"]
    assert len(refused) == BURST
    assert {(e["subject"], e["details"]["path"], e["details"]["status"]) for e in refused} == {
        (url, "/oauth/token", 401)
    }
    assert flow.deployment.refusals.suppressed == before + 10
    # the legitimate twin: a registered client's code exchange, with its proof
    client_id = flow.register()["client_id"]
    code, verifier = flow.code(client_id)
    issued = flow.exchange(client_id, code, verifier, ec.generate_private_key(ec.SECP256R1()))
    assert issued.status_code == 200, issued.text
    assert issued.json()["token_type"] == "DPoP"
