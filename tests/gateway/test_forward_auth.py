"""Forward-auth with Starlette's TestClient: nginx, Traefik and Envoy conventions.

Each refusal has its allowed twin; decisions go through a real Decider over a real home.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from tests.gateway.access_lines import access_lines
from tests.gateway.task_home import API, INTENT, PLAYBOOK, TD, ControlPlane, control_plane
from zerolane.audit.log import AuditLog
from zerolane.errors import InvalidInput, Refusal
from zerolane.gateway.forward_auth import create_app, split_path
from zerolane.gateway.forward_auth_config import ForwardAuthConfig, load_config, parse_config
from zerolane.gateway.inproc import RequestDecider
from zerolane.sdk import Task
from zerolane.tasks.decisions import DecideInput, Decision
from zerolane.types import SystemClock

PUBLIC = "https://api.example.org"
ROUTES: list[dict[str, Any]] = [
    {
        "method": "GET",
        "path": "/reports/{name}",
        "action": "read",
        "resource": "reports/{name}",
        "sensitivity": "internal",
    },
    {
        "method": "DELETE",
        "path": "/reports/{name}",
        "action": "delete",
        "resource": "reports/{name}",
    },
    {"method": "*", "path": "/files/{a}/{b}", "action": "read", "resource": "files/{a}/{b}"},
    {"method": "GET", "path": "/", "action": "read", "resource": "pages/index"},
]


def settings(proxy: str, **extra: Any) -> ForwardAuthConfig:
    return parse_config(
        {"public_url": PUBLIC, "destination": API, "proxy": proxy, "routes": ROUTES, **extra}
    )


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with control_plane(tmp_path_factory.mktemp("forward-auth") / "home") as plane:
        yield plane


@contextlib.contextmanager
def opened(cp: ControlPlane, *audience: str) -> Iterator[Task]:
    """A task whose token names ``audience`` besides the control plane."""
    with (
        cp.agent() as agent,
        agent.task(playbook=PLAYBOOK["name"], intent=INTENT, audience=list(audience)) as task,
    ):
        yield task


@pytest.fixture
def task(cp: ControlPlane) -> Iterator[Task]:
    """A task opened for this API: its token names ``PUBLIC`` (forward-auth's default
    audience)."""
    with opened(cp, PUBLIC) as task:
        yield task


def client_for(cp: ControlPlane, proxy: str, **extra: Any) -> TestClient:
    app = create_app(settings(proxy, **extra), cp.deployment.decider, cp.deployment.audit)
    return TestClient(app)


@pytest.fixture
def nginx(cp: ControlPlane) -> Iterator[TestClient]:
    with client_for(cp, "nginx") as client:
        yield client


def nginx_headers(task: Task, method: str, target: str) -> dict[str, str]:
    """What nginx's auth subrequest carries: the agent's headers plus X-Original-*."""
    path = target.split("?", 1)[0]
    return {
        **task.headers(method, PUBLIC + path),
        "X-Original-Method": method,
        "X-Original-URI": target,
    }


def check(client: TestClient, headers: Mapping[str, str] | Sequence[tuple[str, str]]) -> Any:
    return client.get("/forward-auth", headers=headers)


def test_nginx_allows_in_scope_and_says_which_task(
    cp: ControlPlane, nginx: TestClient, task: Task
) -> None:
    reply = check(nginx, nginx_headers(task, "GET", "/reports/q3?page=2"))
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-zerolane-task"] == task.task_id
    decision = cp.decisions()[-1]
    assert decision["decision_id"] == reply.headers["x-zerolane-decision"]
    assert (decision["url"], decision["destination"], decision["resource"]) == (
        f"{PUBLIC}/reports/q3",
        API,
        "reports/q3",
    )


def test_nginx_denies_out_of_scope_and_unmapped(
    cp: ControlPlane, nginx: TestClient, task: Task
) -> None:
    denied = check(nginx, nginx_headers(task, "DELETE", "/reports/q3"))
    assert denied.status_code == 403
    body = denied.json()
    assert (body["reason"], body["error"]) == ("scope.action", "forbidden")
    assert denied.headers["x-zerolane-reason"] == "scope.action"
    assert denied.headers["x-zerolane-decision"] == body["decision_id"]
    assert "www-authenticate" not in denied.headers

    unmapped = check(nginx, nginx_headers(task, "GET", "/admin/users"))
    assert (unmapped.status_code, unmapped.json()["reason"]) == (403, "route.unmapped")
    recorded = cp.decisions()[-1]
    assert recorded["decision_id"] == unmapped.json()["decision_id"]
    assert recorded["enforcement_point"] == "forward-auth"
    assert recorded["url"] == f"{PUBLIC}/admin/users"
    assert check(nginx, nginx_headers(task, "GET", "/")).status_code == 200  # the "/" route


def test_nginx_token_problems_are_401_with_a_challenge(nginx: TestClient, task: Task) -> None:
    original = {"X-Original-Method": "GET", "X-Original-URI": "/reports/q3"}
    missing = check(nginx, original)
    assert (missing.status_code, missing.json()["reason"]) == (401, "auth.missing")
    assert missing.headers["www-authenticate"] == 'DPoP algs="ES256 EdDSA"'

    bearer = {**original, "Authorization": f"Bearer {task.token}"}
    scheme = check(nginx, bearer)
    assert scheme.status_code == 401
    assert 'error="invalid_token"' in scheme.headers["www-authenticate"]

    no_proof = check(nginx, {**original, "Authorization": f"DPoP {task.token}"})
    assert no_proof.json()["reason"] == "dpop.missing"

    headers = nginx_headers(task, "GET", "/reports/q3")
    assert check(nginx, headers).status_code == 200
    replayed = check(nginx, headers)
    assert (replayed.status_code, replayed.json()["reason"]) == (401, "dpop.replayed")
    assert 'error="invalid_dpop_proof"' in replayed.headers["www-authenticate"]

    other_url = {**nginx_headers(task, "GET", "/reports/q4"), "X-Original-URI": "/reports/q3"}
    assert check(nginx, other_url).json()["reason"] == "dpop.htu"

    forged = {**nginx_headers(task, "GET", "/reports/q3"), "Authorization": "DPoP x.y.z"}
    reply = check(nginx, forged)
    assert reply.status_code == 401
    assert 'error="invalid_token"' in reply.headers["www-authenticate"]


@pytest.mark.parametrize(
    "audience",
    [
        (),  # the control plane's only (its issuer, which every task token names)
        ("https://other.example.org",),  # another enforcement point of the trust domain
        (f"{PUBLIC}/reports",),  # a URL under public_url is not it
        # the comparison is exact: no variant of public_url is taken for it
        (f"{PUBLIC}/",),
        (PUBLIC.upper(),),
        (PUBLIC.replace("https://", "HTTPS://"),),
        (f"{PUBLIC}.evil.example",),
        (PUBLIC[:-1],),
        (f" {PUBLIC}",),
        (f"{PUBLIC}?",),
        (f"{PUBLIC}#",),
        (f"{PUBLIC}:443",),
        (f"{PUBLIC}/", "https://other.example.org"),  # several audiences, none of them it
    ],
)
def test_a_token_for_another_audience_is_refused_by_default(
    cp: ControlPlane, nginx: TestClient, task: Task, audience: tuple[str, ...]
) -> None:
    """No ``audience`` in the config: tokens must name ``public_url`` (a confused deputy
    passing on a token meant elsewhere is refused), and a token for it is allowed."""
    with opened(cp, *audience) as elsewhere:
        refused = check(nginx, nginx_headers(elsewhere, "GET", "/reports/q3"))
    assert (refused.status_code, refused.json()["reason"]) == (401, "token.audience")
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    assert cp.decisions()[-1]["decision_id"] == refused.json()["decision_id"]
    assert check(nginx, nginx_headers(task, "GET", "/reports/q3")).status_code == 200


def test_a_token_naming_public_url_among_other_audiences_is_allowed(
    cp: ControlPlane, nginx: TestClient
) -> None:
    """The twin of the variants above: ``aud`` holds ``public_url`` exactly, with others."""
    with opened(cp, "https://other.example.org", PUBLIC) as both:
        assert check(nginx, nginx_headers(both, "GET", "/reports/q3")).status_code == 200


def test_the_default_audience_is_public_urls_origin() -> None:
    """As the HTTP gateway's is its ``public_url``; whatever the proxy."""
    for proxy in ("nginx", "traefik", "envoy"):
        assert settings(proxy).audience == PUBLIC
    slash = parse_config({"public_url": PUBLIC + "/", "destination": API, "routes": ROUTES})
    assert slash.audience == PUBLIC


def test_a_configured_audience_is_the_one_tokens_must_name(cp: ControlPlane) -> None:
    """``audience`` set: a token for ``public_url`` alone is refused, one for the
    configured audience allowed (a SPIFFE id with a path is an audience like any)."""
    audience = f"spiffe://{TD}/apis/reports"
    with (
        client_for(cp, "nginx", audience=audience) as client,
        opened(cp, PUBLIC) as public,
        opened(cp, audience) as named,
    ):
        refused = check(client, nginx_headers(public, "GET", "/reports/q3"))
        assert (refused.status_code, refused.json()["reason"]) == (401, "token.audience")
        assert check(client, nginx_headers(named, "GET", "/reports/q3")).status_code == 200


def test_nginx_refuses_duplicated_or_missing_headers(nginx: TestClient, task: Task) -> None:
    good = nginx_headers(task, "GET", "/reports/q3")
    for name in ("X-Original-URI", "X-Original-Method"):
        partial = {k: v for k, v in good.items() if k != name}
        assert check(nginx, partial).json()["reason"] == "forward_auth.headers"
    twice = [*good.items(), ("X-Original-URI", "/reports/q4")]
    assert check(nginx, twice).json()["reason"] == "forward_auth.headers"
    lower = {**good, "X-Original-Method": "get"}
    assert check(nginx, lower).json()["reason"] == "forward_auth.headers"
    two_proofs = [*good.items(), ("DPoP", good["DPoP"])]
    refused = check(nginx, two_proofs)
    assert (refused.status_code, refused.json()["reason"]) == (403, "dpop.multiple")
    two_tokens = [*good.items(), ("Authorization", good["Authorization"])]
    refused = check(nginx, two_tokens)
    assert (refused.status_code, refused.json()["reason"]) == (403, "auth.multiple")
    assert check(nginx, good).status_code == 200  # the twin, still unused


ATTACKS = [
    "/reports/..%2fsecrets",
    "/reports/%2e%2e",
    "/reports/%2E%2E/secrets",
    "/reports/.",
    "/reports//q3",
    "/reports/q3/",
    "/reports/q3;jsessionid=1",
    "/reports\\q3",
    "/reports/%5cq3",
    "/reports/%252e%252e",
    "/reports/caf%C3%A9",
    "/reports/%ff",
    "/reports/q%00",
    "/reports/q*",
    "reports/q3",
]


@pytest.mark.parametrize("target", ATTACKS)
def test_nginx_refuses_unsafe_paths(nginx: TestClient, task: Task, target: str) -> None:
    """Each attack carries a valid proof for its exact URL; the twin /reports/q3 passes.
    nginx's auth_request relays only 401 and 403 (anything else becomes its 500), so the
    refusal every enforcement point answers 400 is a 403 here, with the same reason."""
    headers = {
        **task.headers("GET", PUBLIC + "/" + target.lstrip("/")),
        "X-Original-Method": "GET",
        "X-Original-URI": target,
    }
    reply = check(nginx, headers)
    assert (reply.status_code, reply.json()["reason"]) == (403, "request.path")
    assert reply.headers["x-zerolane-reason"] == "request.path"
    assert check(nginx, nginx_headers(task, "GET", "/reports/q3")).status_code == 200


def test_traefik_and_envoy_answer_an_unsafe_path_400(cp: ControlPlane, task: Task) -> None:
    """They relay the check's status as it is: the 400 every enforcement point answers."""
    target = "/reports/%2e%2e/secrets"
    with client_for(cp, "traefik") as traefik:
        reply = check(traefik, traefik_headers(task, "GET", target))
        assert (reply.status_code, reply.json()["reason"]) == (400, "request.path")
        assert check(traefik, traefik_headers(task, "GET", "/reports/q3")).status_code == 200
    with client_for(cp, "envoy") as envoy:
        headers = task.headers("GET", PUBLIC + target)
        reply = envoy.get("/forward-auth" + target, headers=headers)
        assert (reply.status_code, reply.json()["reason"]) == (400, "request.path")


def traefik_headers(
    task: Task, method: str, uri: str, host: str = "api.example.org"
) -> dict[str, str]:
    return {
        **task.headers(method, PUBLIC + uri.split("?", 1)[0]),
        "X-Forwarded-Method": method,
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": host,
        "X-Forwarded-Uri": uri,
        "X-Forwarded-For": "10.0.0.7",
    }


def test_traefik_allowed_and_denied_twins(cp: ControlPlane, task: Task) -> None:
    with client_for(cp, "traefik") as traefik:
        allowed = check(traefik, traefik_headers(task, "GET", "/reports/q3?x=1"))
        assert allowed.status_code == 200, allowed.text
        assert allowed.headers["x-zerolane-task"] == task.task_id
        default_port = traefik_headers(task, "GET", "/reports/q3", host="API.example.org:443")
        assert check(traefik, default_port).status_code == 200

        denied = check(traefik, traefik_headers(task, "DELETE", "/reports/q3"))
        assert (denied.status_code, denied.json()["reason"]) == (403, "scope.action")
        for host in (
            "evil.example",
            "api.example.org:8443",
            "api.example.org/x",
            "u@api.example.org",
        ):
            other = check(traefik, traefik_headers(task, "GET", "/reports/q3", host=host))
            assert (other.status_code, other.json()["reason"]) == (403, "forward_auth.host")
        http = {**traefik_headers(task, "GET", "/reports/q3"), "X-Forwarded-Proto": "http"}
        assert check(traefik, http).json()["reason"] == "forward_auth.host"
        no_uri = traefik_headers(task, "GET", "/reports/q3")
        del no_uri["X-Forwarded-Uri"]
        assert check(traefik, no_uri).json()["reason"] == "forward_auth.headers"


def test_traefik_ignores_other_proxies_headers(cp: ControlPlane, task: Task) -> None:
    """A client-sent X-Original-URI is not Traefik's: the decision is on X-Forwarded-Uri."""
    with client_for(cp, "traefik") as traefik:
        smuggled = {**traefik_headers(task, "GET", "/admin/users"), "X-Original-URI": "/reports/q3"}
        assert check(traefik, smuggled).json()["reason"] == "route.unmapped"


def test_envoy_allowed_and_denied_twins(cp: ControlPlane, task: Task) -> None:
    with client_for(cp, "envoy", endpoint="/ext-authz") as envoy:
        allowed = envoy.get(
            "/ext-authz/reports/q3?x=1", headers=task.headers("GET", f"{PUBLIC}/reports/q3")
        )
        assert allowed.status_code == 200, allowed.text
        assert allowed.headers["x-zerolane-task"] == task.task_id
        wildcard = envoy.post(
            "/ext-authz/files/a/b", headers=task.headers("POST", f"{PUBLIC}/files/a/b")
        )
        assert wildcard.status_code == 200  # a "*" route: any method

        denied = envoy.delete(
            "/ext-authz/reports/q3", headers=task.headers("DELETE", f"{PUBLIC}/reports/q3")
        )
        assert (denied.status_code, denied.json()["reason"]) == (403, "scope.action")
        root = envoy.put("/ext-authz", headers=task.headers("PUT", f"{PUBLIC}/"))
        assert root.json()["reason"] == "route.unmapped"  # "/" is mapped for GET only
        encoded = envoy.get(
            "/ext-authz/reports/a%2Fb", headers=task.headers("GET", f"{PUBLIC}/reports/a%2Fb")
        )
        assert encoded.json()["reason"] == "request.path"
        smuggled = {
            **task.headers("GET", f"{PUBLIC}/admin/users"),
            "X-Original-URI": "/reports/q3",
            "X-Forwarded-Uri": "/reports/q3",
        }
        assert envoy.get("/ext-authz/admin/users", headers=smuggled).status_code == 403
        assert envoy.get("/ext-authzx/reports/q3").status_code == 404
        assert envoy.get("/healthz").json() == {"status": "ok"}


def test_only_the_endpoint_answers(nginx: TestClient) -> None:
    assert nginx.get("/forward-auth/reports").status_code == 404
    assert nginx.get("/other").status_code == 404
    assert nginx.get("/healthz").status_code == 200


class _Raising:
    def decide(self, token: str, proof: str | None, request: DecideInput) -> Decision:
        raise RuntimeError("boom")


class _Fixed:
    def __init__(self, refusal: Refusal) -> None:
        self.refusal = refusal

    def decide(self, token: str, proof: str | None, request: DecideInput) -> Decision:
        return Decision("d1", False, (), (), None, self.refusal)


class _NoStore:
    def append_events(self, *_: object) -> None:
        raise RuntimeError("disk full")


@pytest.mark.parametrize(
    ("decider", "status", "reason"),
    [
        (_Raising(), 503, "decide.error"),
        (_Fixed(Refusal.UNAVAILABLE), 503, "decision.deny"),
        (_Fixed(Refusal.CONFLICT), 403, "decision.deny"),
        (_Fixed(Refusal.UNAUTHENTICATED), 401, "decision.deny"),
    ],
)
def test_decider_failures_fail_closed(
    task: Task, decider: RequestDecider, status: int, reason: str
) -> None:
    with TestClient(create_app(settings("nginx"), decider)) as client:
        reply = check(client, nginx_headers(task, "GET", "/reports/q3"))
    assert (reply.status_code, reply.json()["reason"]) == (status, reason)


def test_refusals_without_audit_log_and_with_a_failing_one(task: Task) -> None:
    with TestClient(create_app(settings("nginx"), _Raising())) as client:
        unrecorded = check(client, nginx_headers(task, "GET", "/admin"))
    assert unrecorded.json()["decision_id"] is None
    broken = AuditLog(_NoStore(), SystemClock())  # type: ignore[arg-type]
    with TestClient(create_app(settings("nginx"), _Raising(), broken)) as client:
        reply = check(client, nginx_headers(task, "GET", "/admin"))
    assert (reply.status_code, reply.json()["reason"]) == (503, "audit.write")


def test_load_config_from_toml_yaml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "fa.toml"
    toml.write_text(
        'public_url = "https://api.example.org"\ndestination = "reports-api"\n'
        'proxy = "traefik"\nport = 9000\naudience = "https://api.example.org"\n'
        '[[routes]]\nmethod = "get"\npath = "/reports/{name}"\naction = "read"\n'
        'resource = "reports/{name}"\nsensitivity = "internal"\n'
    )
    loaded = load_config(toml)
    assert (loaded.proxy, loaded.port, loaded.routes[0].method) == ("traefik", 9000, "GET")
    doc = {"public_url": PUBLIC, "destination": API, "routes": ROUTES}
    (tmp_path / "fa.json").write_text(json.dumps(doc))
    assert load_config(tmp_path / "fa.json") == settings("nginx")
    (tmp_path / "fa.yaml").write_text("- a list\n")
    with pytest.raises(InvalidInput, match="expected a table"):
        load_config(tmp_path / "fa.yaml")
    with pytest.raises(InvalidInput, match=r"config\.file"):  # as the gateways say it
        load_config(tmp_path / "missing.toml")


BAD_CONFIGS: list[tuple[dict[str, Any], str]] = [
    ({"public_url": "https://api.example.org/base"}, "config.url"),
    ({"public_url": "ftp://api.example.org"}, "config.url"),
    ({"public_url": "https://api.example.org?x=1"}, "config.url"),
    ({"public_url": "https://api.example.org#top"}, "config.url"),
    ({"public_url": "https://api.example.org?"}, "config.url"),
    ({"public_url": "https://user@api.example.org"}, "config.url"),
    ({"public_url": "https://"}, "config.url"),
    ({"proxy": "haproxy"}, "config.proxy"),
    ({"endpoint": "/healthz"}, "config.path"),
    ({"endpoint": "forward-auth"}, "config.path"),
    ({"destination": ""}, "config.missing"),
    ({"audience": 3}, "config.type"),
    ({"audience": ""}, "config.missing"),
    # a trust domain: every task token names it (its issuer), so it would take any
    ({"audience": "spiffe://example.org"}, "config.audience"),
    ({"audience": "SPIFFE://example.org/"}, "config.audience"),
    ({"port": True}, "config.type"),
    ({"port": 70000}, "config.port"),
    ({"routes": []}, "config.routes"),
    ({"extra": 1}, "config.unknown_key"),
    ({"routes": ["GET /"]}, "config.type"),
    ({"routes": [{**ROUTES[0], "method": "GE T"}]}, "config.route_method"),
    ({"routes": [{**ROUTES[0], "path": "reports/{name}"}]}, "config.route_path"),
    ({"routes": [{**ROUTES[0], "path": "/reports/../{name}"}]}, "config.route_path"),
    ({"routes": [{**ROUTES[0], "path": "/{name}/{name}"}]}, "config.route_path"),
    ({"routes": [{**ROUTES[0], "resource": "reports/{other}"}]}, "config.route_resource"),
    ({"routes": [{**ROUTES[0], "resource": "reports {name}"}]}, "config.route_resource"),
    ({"routes": [{**ROUTES[0], "sensitivity": "secret"}]}, "config.sensitivity"),
    ({"routes": [{**ROUTES[0], "extra": 1}]}, "config.unknown_key"),
    ({"routes": [{**ROUTES[0], "action": ""}]}, "config.missing"),
    ({"mode": "audit"}, "config.mode"),
    ({"routes": [{**ROUTES[0], "mode": "off"}]}, "config.mode"),
    # /v1/decide names a route in shadow in at most 256 characters
    ({"routes": [{**ROUTES[0], "path": "/r" * 120 + "/{name}", "mode": "shadow"}]}, "config.mode"),
]


@pytest.mark.parametrize(("change", "reason"), BAD_CONFIGS)
def test_bad_configs_are_refused(change: dict[str, Any], reason: str) -> None:
    """Refused with the reason ids of every configuration file, naming the key."""
    doc = {"public_url": PUBLIC, "destination": API, "routes": ROUTES, **change}
    with pytest.raises(InvalidInput) as err:
        parse_config(doc)
    assert err.value.reason == reason
    assert next(iter(change)) in err.value.message


def test_every_problem_of_a_file_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "fa.yaml"
    path.write_text(
        f"public_url: {PUBLIC}\ndestination: api\nprxy: nginx\nport: '8790'\n"
        "routes:\n- {method: GET, path: /r, action: read}\n"
    )
    with pytest.raises(InvalidInput) as err:
        load_config(path)
    assert err.value.reason == "config.invalid"
    assert err.value.message.splitlines() == [
        f"{path}: routes[0].resource: is required",
        f"{path}: port: must be an integer, not str",
        f"{path}: prxy: unknown key (known: public_url, destination, routes, proxy, endpoint, "
        "audience, host, port, tls, http, mode)",
    ]


def test_split_path_keeps_the_raw_path_and_decodes_segments() -> None:
    assert split_path("/reports/q%403?x=1") == ("/reports/q%403", ("reports", "q@3"))
    assert split_path("/?x") == ("/", ())
    # the one path rule, the HTTP gateway's: an encoded unreserved character is refused
    with pytest.raises(Exception, match=r"request\.path"):
        split_path("/reports/q%2D3")


def test_each_check_has_an_access_line_allow_and_deny(cp: ControlPlane, task: Task) -> None:
    with access_lines() as lines, client_for(cp, "nginx") as nginx:
        allowed_headers = nginx_headers(task, "GET", "/reports/q3?token=query-secret")
        assert check(nginx, allowed_headers).status_code == 200
        denied_headers = nginx_headers(task, "DELETE", "/reports/q3")
        assert check(nginx, denied_headers).status_code == 403  # the twin: out of scope
        assert check(nginx, {"X-Original-Method": "GET"}).status_code == 403  # no URI
    allow, deny, refused = lines.fields()
    assert {k: allow[k] for k in ("listener", "method", "path", "status")} == {
        "listener": "forward-auth",
        "method": "GET",
        "path": "/forward-auth",
        "status": 200,
    }
    assert (allow["decision"], allow["task"], allow["reason"]) == ("allow", task.task_id, None)
    assert (deny["status"], deny["decision"], deny["task"], deny["reason"]) == (
        403,
        "deny",
        task.task_id,
        "scope.action",
    )
    assert (refused["decision"], refused["reason"]) == ("deny", "forward_auth.headers")
    for line in lines.rendered():
        assert "query-secret" not in line
        assert allowed_headers["DPoP"] not in line
        assert allowed_headers["Authorization"].split()[-1] not in line


def test_an_unrecorded_refusal_is_logged_as_audit_write(task: Task) -> None:
    broken = AuditLog(_NoStore(), SystemClock())  # type: ignore[arg-type]
    with (
        access_lines() as lines,
        TestClient(create_app(settings("nginx"), _Raising(), broken)) as client,
    ):
        assert check(client, nginx_headers(task, "GET", "/admin")).status_code == 503
    (line,) = lines.fields()
    assert (line["status"], line["decision"], line["reason"]) == (503, "deny", "audit.write")


@pytest.mark.parametrize("header", ["X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"])
def test_a_method_override_header_is_refused(nginx: TestClient, task: Task, header: str) -> None:
    """The proxy would forward it upstream, which may take the decided GET as a DELETE
    (a 400, answered 403 to nginx, which relays nothing else)."""
    overridden = {**nginx_headers(task, "GET", "/reports/q3"), header: "DELETE"}
    refused = check(nginx, overridden)
    assert refused.status_code == 403
    assert refused.json()["reason"] == "request.method_override"
    twin = check(nginx, nginx_headers(task, "GET", "/reports/q3"))
    assert twin.status_code == 200, twin.text
