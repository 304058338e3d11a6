"""Client ID metadata documents: each URL, address, answer and document refused beside
the one accepted, the cache, and TLS trust (a site on loopback, served for real)."""

from __future__ import annotations

import contextlib
import gzip
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient

from tests.clocks import AheadClock
from tests.server.client_documents import ClientSite
from tests.server.oauth_fixtures import (
    ADMIN,
    CLIENT_PLAYBOOK,
    REDIRECT,
    TD,
    Person,
    oauth_home,
    pkce,
)
from zerolane.audit.log import event_json
from zerolane.errors import InvalidInput
from zerolane.identity.spiffe_id import parse_workload_id
from zerolane.server import oauth_client_documents
from zerolane.server.app import create_app
from zerolane.server.deployment import Deployment
from zerolane.server.oauth_client_documents import (
    DEFAULT_TTL,
    MAX_DOCUMENT,
    MIN_TTL,
    ClientDocumentError,
    ClientDocuments,
    check_url,
    client_of,
    fetch,
    is_client_id_url,
    resolve,
)
from zerolane.server.oauth_server import OAuthServer
from zerolane.tasks.playbooks import parse_playbook
from zerolane.tokens.rfc9449 import make_proof

ISSUER = "https://cp.example.org"
GOOD = "https://app.example.com/oauth/client.json"


@pytest.fixture
def site() -> Iterator[ClientSite]:
    with ClientSite(tls=False) as running:
        yield running


@pytest.fixture
def tls_site() -> Iterator[ClientSite]:
    with ClientSite(tls=True) as running:
        yield running


def _reason(err: pytest.ExceptionInfo[ClientDocumentError]) -> str:
    assert err.value.error == "invalid_client"
    return err.value.reason


# the URL, before anything is fetched


def test_registered_ids_are_not_urls() -> None:
    assert is_client_id_url(GOOD)
    assert not is_client_id_url("Zx3_k-9aQ1")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://app.example.com/client.json", "url"),  # https only
        ("ftp://app.example.com/client.json", "url"),
        ("https://user:pw@app.example.com/client.json", "url"),
        ("https://app.example.com/client.json#x", "url"),
        ("https://app.example.com", "url"),  # no path
        ("https://app.example.com/", "url"),
        ("https://app.example.com/a/../client.json", "url"),
        ("https://app.example.com/a/%2E%2E/client.json", "url"),
        ("https://app.example.com/./client.json", "url"),
        ("https://app.example.com/" + "a" * 2000, "url"),
        ("https://app.exämple.com/client.json", "url"),
        ("https://app.example.com/client json", "url"),
        ("https://app.example.com:99999/client.json", "url"),
        ("https:///client.json", "url"),
        ("https://cp.example.org/oauth/authorize", "url"),  # this server itself
        ("https://CP.example.org/x", "url"),
        ("https://10.0.0.7/client.json", "address"),
        ("https://169.254.169.254/latest/meta-data", "address"),
        ("https://100.64.0.1/client.json", "address"),
        ("https://127.0.0.1/client.json", "address"),
        ("https://localhost/client.json", "address"),
        ("https://[::1]/client.json", "address"),
        ("https://[::ffff:10.0.0.1]/client.json", "address"),
        ("https://[fe80::1]/client.json", "address"),
        ("https://224.0.0.1/client.json", "address"),
    ],
)
def test_a_bad_url_is_refused_before_any_fetch(url: str, reason: str) -> None:
    with pytest.raises(ClientDocumentError) as refused:
        check_url(url, issuer=ISSUER, loopback=False)
    assert _reason(refused) == f"oauth.client_metadata_{reason}"
    assert refused.value.description


@pytest.mark.parametrize(
    "url",
    [
        GOOD,
        "https://app.example.com:8443/client.json?v=1",  # a port; a query (discouraged)
        "https://8.8.8.8/client.json",
        "https://cp.example.org:8443/client.json",  # another origin on the same host
    ],
)
def test_a_good_url_passes(url: str) -> None:
    assert check_url(url, issuer=ISSUER, loopback=False).geturl() == url


def test_loopback_only_where_allowed_and_then_http_too() -> None:
    for url in ("http://127.0.0.1:8000/c.json", "https://localhost/c.json"):
        with pytest.raises(ClientDocumentError):
            check_url(url, issuer=ISSUER, loopback=False)
        assert check_url(url, issuer=ISSUER, loopback=True).geturl() == url
    with pytest.raises(ClientDocumentError):  # still nothing private
        check_url("https://192.168.1.1/c.json", issuer=ISSUER, loopback=True)
    with pytest.raises(ClientDocumentError):  # nor plain http elsewhere
        check_url("http://app.example.com/c.json", issuer=ISSUER, loopback=True)


# the addresses a name resolves to


@pytest.mark.parametrize(
    "addresses",
    [
        ["10.1.2.3"],
        ["93.184.215.14", "192.168.0.5"],  # one special-use address is enough
        ["::ffff:127.0.0.1"],
        ["2002:a00:1::1"],  # 6to4 of 10.0.0.1
        ["fd00::1"],
        ["0.0.0.0"],  # noqa: S104 (an address refused, never bound)
        ["64:ff9b::a9fe:a9fe"],  # NAT64 of 169.254.169.254 (cloud metadata)
        ["64:ff9b:1::a00:1"],  # local-use NAT64
        ["::a9fe:a9fe"],  # IPv4-compatible
        ["::ffff:0:a00:1"],  # SIIT
        ["fec0::1"],  # site-local
    ],
)
def test_a_name_resolving_to_a_special_use_address_is_not_fetched(addresses: list[str]) -> None:
    asked: list[tuple[str, int]] = []

    def resolver(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return addresses

    parts = check_url(GOOD, issuer=ISSUER, loopback=False)
    with pytest.raises(ClientDocumentError) as refused:
        fetch(parts, loopback=False, resolver=resolver)
    assert _reason(refused) == "oauth.client_metadata_address"
    assert asked == [("app.example.com", 443)]


def test_a_name_that_does_not_resolve_is_refused() -> None:
    parts = check_url("https://nothing.invalid/client.json", issuer=ISSUER, loopback=False)
    with pytest.raises(ClientDocumentError) as refused:
        fetch(parts, loopback=False)
    assert _reason(refused) == "oauth.client_metadata_fetch"
    assert resolve("127.0.0.1", 80) == ["127.0.0.1"]  # the twin


# the answer


def _fetch(site: ClientSite, path: str) -> bytes:
    parts = check_url(site.url(path), issuer=ISSUER, loopback=True)
    return fetch(parts, loopback=True, verify=site.verify).body


def test_only_a_200_answer_is_read_and_redirects_are_not_followed(site: ClientSite) -> None:
    target = site.document("/real.json")
    site.serve("/moved.json", b"", 302, Location=target)
    site.serve("/missing.json", b"{}", 404)
    for path, shown in (("/moved.json", "302 (redirects"), ("/missing.json", "404")):
        with pytest.raises(ClientDocumentError) as refused:
            _fetch(site, path)
        assert _reason(refused) == "oauth.client_metadata_status"
        assert shown in refused.value.description
    assert site.hits == ["/moved.json", "/missing.json"]  # never /real.json
    assert json.loads(_fetch(site, "/real.json"))["client_id"] == target  # the twin


def test_a_document_over_the_size_cap_is_refused(site: ClientSite) -> None:
    site.serve("/big.json", b" " * (MAX_DOCUMENT + 1))
    with pytest.raises(ClientDocumentError) as refused:
        _fetch(site, "/big.json")
    assert _reason(refused) == "oauth.client_metadata_size"
    site.serve("/big.json", b" " * MAX_DOCUMENT)  # the twin: at the cap
    assert len(_fetch(site, "/big.json")) == MAX_DOCUMENT


def test_a_compressed_document_is_refused_before_it_is_inflated(site: ClientSite) -> None:
    """No decompression bomb: the fetch asks for no encoding, and a gzip answer (a few
    KiB that would inflate to megabytes) is refused unread; the plain twin is read."""
    bomb = gzip.compress(b" " * 5_000_000)
    assert len(bomb) < MAX_DOCUMENT
    site.serve("/bomb.json", bomb, Content_Encoding="gzip")
    with pytest.raises(ClientDocumentError) as refused:
        _fetch(site, "/bomb.json")
    assert _reason(refused) == "oauth.client_metadata_encoding"
    target = site.document("/plain.json")
    assert json.loads(_fetch(site, "/plain.json"))["client_id"] == target


def test_a_site_that_is_down_or_hangs_up_is_refused(site: ClientSite) -> None:
    parts = check_url("http://127.0.0.1:9/client.json", issuer=ISSUER, loopback=True)
    with pytest.raises(ClientDocumentError) as refused:
        fetch(parts, loopback=True)
    assert _reason(refused) == "oauth.client_metadata_fetch"
    site.serve("/hangs-up.json", b"", 0)
    with pytest.raises(ClientDocumentError) as refused:
        _fetch(site, "/hangs-up.json")
    assert _reason(refused) == "oauth.client_metadata_fetch"
    assert site.hits == ["/hangs-up.json"]  # asked once, not again at another address


def test_https_is_verified_by_the_urls_host(tls_site: ClientSite) -> None:
    url = tls_site.document()
    parts = check_url(url, issuer=ISSUER, loopback=True)
    with pytest.raises(ClientDocumentError) as refused:  # a certificate nobody trusts
        fetch(parts, loopback=True)
    assert _reason(refused) == "oauth.client_metadata_fetch"
    assert json.loads(fetch(parts, loopback=True, verify=tls_site.verify).body)["client_id"] == url


# the document


def _client(doc: object, url: str = GOOD) -> object:
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    parts = urlsplit(url)
    return client_of(url, parts, body, trust_domain="example.org", now=1000.0)


VALID = {"client_id": GOOD, "client_name": "IDE <agent>", "redirect_uris": [REDIRECT]}


@pytest.mark.parametrize(
    ("doc", "shown"),
    [
        (b"not json", "JSON object"),
        (b"[1]", "JSON object"),
        (b"[" * 100_000, "JSON object"),
        ({**VALID, "client_id": GOOD + "/"}, "not its URL"),
        ({**VALID, "client_id": None}, "not its URL"),
        ({k: v for k, v in VALID.items() if k != "client_id"}, "not its URL"),
        ({**VALID, "client_secret": "s"}, "no client secret"),
        ({**VALID, "client_secret_expires_at": 0}, "no client secret"),
        ({**VALID, "token_endpoint_auth_method": "client_secret_basic"}, "no client secret"),
        ({**VALID, "token_endpoint_auth_method": "client_secret_jwt"}, "no client secret"),
        ({**VALID, "token_endpoint_auth_method": "private_key_jwt"}, "public clients only"),
        ({**VALID, "jwks": {"keys": [{"kty": "EC", "d": "x"}]}}, "private key"),
        ({**VALID, "jwks": {"keys": [{"kty": "oct", "k": "x"}]}}, "private key"),
        ({k: v for k, v in VALID.items() if k != "redirect_uris"}, "redirect_uris"),
        ({**VALID, "redirect_uris": ["http://evil.example/cb"]}, "loopback"),
        ({**VALID, "redirect_uris": ["javascript:alert(1)"]}, "loopback"),
        ({**VALID, "client_name": "x" * 129}, "client_name"),
        ({**VALID, "grant_types": ["password"]}, "grant_types"),
    ],
)
def test_a_bad_document_is_refused(doc: object, shown: str) -> None:
    with pytest.raises(ClientDocumentError) as refused:
        _client(doc)
    assert _reason(refused) == "oauth.client_metadata_document"
    assert shown in refused.value.description


def test_a_good_document_is_a_client_under_its_own_name() -> None:
    client = _client(VALID | {"jwks": {"keys": [{"kty": "EC", "x": "a", "y": "b"}]}})
    assert client == _client(VALID | {"token_endpoint_auth_method": "none"})
    assert client.client_id == GOOD  # type: ignore[attr-defined]
    assert client.client_name == "IDE <agent>"  # type: ignore[attr-defined]
    assert client.grant_types == ("authorization_code",)  # type: ignore[attr-defined]
    spiffe_id = client.spiffe_id  # type: ignore[attr-defined]
    assert spiffe_id.startswith("spiffe://example.org/mcp-clients/url/app.example.com/")
    parse_workload_id(spiffe_id)  # a valid SPIFFE ID
    other = _client({**VALID, "client_id": GOOD + "2"}, GOOD + "2")
    assert other.spiffe_id != spiffe_id  # type: ignore[attr-defined]
    port = "https://app.example.com:8443/c.json"
    with_port = _client({**VALID, "client_id": port}, port)
    parse_workload_id(with_port.spiffe_id)  # type: ignore[attr-defined]
    assert "/url/app.example.com_8443/" in with_port.spiffe_id  # type: ignore[attr-defined]


# kept for its cache lifetime


class Documents(ClientDocuments):
    def __init__(self, site: ClientSite, max_age: int = 3600) -> None:
        super().__init__(
            trust_domain="example.org",
            issuer=ISSUER,
            max_age=max_age,
            loopback=True,
            verify=site.verify,
        )


def test_a_document_is_kept_for_its_max_age_within_bounds(site: ClientSite) -> None:
    documents = Documents(site, max_age=600)
    cases = [("/a.json", "max-age=120", 120), ("/b.json", "max-age=5", MIN_TTL)]
    cases += [("/c.json", "public, max-age=99999", 600), ("/d.json", "no-store", MIN_TTL)]
    cases += [("/e.json", "", DEFAULT_TTL)]
    for path, cache_control, ttl in cases:
        url = site.document(path)
        status, headers, body = site.answers[path]
        site.answers[path] = (status, {**headers, "Cache-Control": cache_control}, body)
        assert documents.client(url, 0.0)[1] is True
        assert documents.client(url, ttl - 0.5)[1] is False  # kept
        assert documents.client(url, ttl)[1] is True  # fetched again
    assert len(site.hits) == 2 * len(cases)


def test_a_refusal_is_never_kept(site: ClientSite) -> None:
    documents = Documents(site)
    url = site.url("/client.json")
    site.serve("/client.json", b"{}", 503)
    with pytest.raises(ClientDocumentError):
        documents.client(url, 0.0)
    site.document("/client.json")
    client, fetched = documents.client(url, 1.0)
    assert (client.client_id, fetched) == (url, True)
    site.serve("/client.json", {"client_id": url, "redirect_uris": ["http://evil.example/"]})
    assert documents.client(url, 2.0)[1] is False  # a kept one is not refetched early


def test_the_oldest_document_goes_first(site: ClientSite, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(oauth_client_documents, "MAX_DOCUMENTS", 1)
    documents = Documents(site)
    first, second = site.document("/1.json"), site.document("/2.json")
    documents.client(first, 0.0)
    documents.client(second, 0.0)
    assert documents.cached(second, 1.0) is not None
    assert documents.cached(first, 1.0) is None


# through the endpoints: a control plane on loopback, the client's site beside it

CP = "http://127.0.0.1:8700"
RESOURCE = "http://127.0.0.1:9/mcp"
URL_PLAYBOOK = {
    **CLIENT_PLAYBOOK,
    "name": "url-clients",
    "openers": {"spiffe_ids": [f"spiffe://{TD}/mcp-clients/url/127.0.0.1_*/*"]},
}


class Endpoints:
    def __init__(self, client: TestClient, deployment: Deployment, site: ClientSite) -> None:
        self.client, self.deployment, self.site = client, deployment, site
        self.person = Person(client)

    def authorize_url(self, client_id: str, challenge: str, **params: str) -> str:
        query = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "st-1",
            "resource": RESOURCE,
        } | params
        return "/oauth/authorize?" + urlencode(query)

    def token(
        self,
        client_id: str,
        code: str,
        verifier: str,
        key: ec.EllipticCurvePrivateKey | None = None,
        iat: int | None = None,
        **form: str,
    ) -> Any:
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "client_id": client_id,
            "redirect_uri": REDIRECT,
        } | form
        key = key or ec.generate_private_key(ec.SECP256R1())
        proof = make_proof(key, method="POST", url=f"{CP}/oauth/token", iat=iat)
        return self.client.post("/oauth/token", data=data, headers={"DPoP": proof})

    def events(self, kind: str) -> list[dict[str, Any]]:
        self.deployment.refusals.flush(10)  # refusals are written off the request path
        found = [event_json(r) for r in self.deployment.audit.iter_records()]
        return [e for e in found if e["kind"] == kind]


def _endpoints(
    tmp_path: Path, site: ClientSite, clock: AheadClock | None = None, **oauth: Any
) -> Iterator[Endpoints]:
    deployment = oauth_home(
        tmp_path / "home", public_url=CP, resource=RESOURCE, bearer=False, oauth=oauth, clock=clock
    )
    app = create_app(deployment)
    app.state.oauth.documents.verify = site.verify
    with TestClient(app, base_url=CP) as client:
        yield Endpoints(client, deployment, site)
    deployment.close()


@pytest.fixture
def endpoints(tmp_path: Path, site: ClientSite) -> Iterator[Endpoints]:
    yield from _endpoints(tmp_path, site, client_metadata_loopback=True)


def test_a_url_client_signs_in_consents_and_gets_a_task(endpoints: Endpoints) -> None:
    meta = endpoints.client.get("/.well-known/oauth-authorization-server").json()
    assert meta["client_id_metadata_document_supported"] is True
    url = endpoints.site.document(client_name="<b>IDE</b> agent")
    verifier, challenge = pkce()
    page = endpoints.person.open_page(endpoints.authorize_url(url, challenge))
    # admitted by no playbook yet: `mcp-clients/*` is for registered clients only
    assert page.status_code == 403
    assert "no playbook lets this app open a task" in page.text
    endpoints.deployment.playbooks.apply(parse_playbook(URL_PLAYBOOK, "test"), ADMIN)
    page = endpoints.person.open_page(endpoints.authorize_url(url, challenge))
    assert page.status_code == 200, page.text
    assert "&lt;b&gt;IDE&lt;/b&gt; agent" in page.text
    assert "<b>IDE" not in page.text
    assert url in page.text  # the URL, and so its host, is shown
    answer = endpoints.person.consent(
        endpoints.authorize_url(url, challenge), playbook="url-clients"
    )
    assert answer["iss"] == CP
    reply = endpoints.token(url, answer["code"], verifier)
    assert reply.status_code == 200, reply.text
    assert reply.json()["token_type"] == "DPoP"
    opened = endpoints.events("task.opened")[-1]
    assert opened["actor"]["id"].startswith(f"spiffe://{TD}/mcp-clients/url/127.0.0.1_")
    assert opened["details"]["playbook"] == "url-clients"
    learned = endpoints.events("oauth.client_registered")
    assert [(e["subject"], e["outcome"]) for e in learned] == [(url, "success")]
    assert endpoints.site.hits == ["/client.json"]  # kept between the steps


def test_a_redirect_uri_the_document_does_not_list_is_shown_not_followed(
    endpoints: Endpoints,
) -> None:
    url = endpoints.site.document()
    challenge = pkce()[1]
    wrong = endpoints.authorize_url(url, challenge, redirect_uri="http://127.0.0.1:1/other")
    page = endpoints.person.open_page(wrong)
    assert page.status_code == 400
    assert "location" not in page.headers
    right = endpoints.person.open_page(endpoints.authorize_url(url, challenge))
    assert right.status_code == 403  # the twin goes on (to a page no playbook admits)


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"client_id": "https://elsewhere.example/client.json"}, "document"),
        ({"token_endpoint_auth_method": "private_key_jwt"}, "document"),
        ({"client_secret": "shh"}, "document"),
        ({"redirect_uris": None}, "document"),
    ],
)
def test_a_refused_document_is_invalid_client_shown_and_at_the_token_endpoint(
    endpoints: Endpoints, doc: dict[str, Any], reason: str
) -> None:
    url = endpoints.site.document(**doc)
    page = endpoints.person.open_page(endpoints.authorize_url(url, pkce()[1]))
    assert page.status_code == 400
    assert "location" not in page.headers
    assert "invalid_client" in page.text
    verifier = pkce()[0]
    reply = endpoints.token(url, "a-code", verifier)
    assert reply.status_code == 401
    body = reply.json()
    assert (body["error"], body["reason"]) == (
        "invalid_client",
        f"oauth.client_metadata_{reason}",
    )
    assert body["error_description"]
    refused = endpoints.events("oauth.client_registered")
    assert [(e["outcome"], e["reason"]) for e in refused] == [
        ("denied", f"oauth.client_metadata_{reason}")
    ] * 2
    assert endpoints.site.hits == ["/client.json"] * 2  # a refusal is not kept
    endpoints.site.document()  # the twin: the document fixed, the same URL is heard
    assert endpoints.person.open_page(endpoints.authorize_url(url, pkce()[1])).status_code == 403


def test_without_loopback_a_loopback_url_is_not_even_fetched(
    tmp_path: Path, tls_site: ClientSite
) -> None:
    for endpoints in _endpoints(tmp_path, tls_site):
        url = tls_site.document()
        page = endpoints.person.open_page(endpoints.authorize_url(url, pkce()[1]))
        assert page.status_code == 400
        assert "special-use address" in page.text
        assert tls_site.hits == []


def test_switched_off_url_clients_are_refused_and_registration_still_works(
    tmp_path: Path, site: ClientSite
) -> None:
    deployment = oauth_home(
        tmp_path / "home",
        public_url=CP,
        resource=RESOURCE,
        bearer=False,
        oauth={"client_metadata_documents": False},
    )
    with TestClient(create_app(deployment), base_url=CP) as client:
        meta = client.get("/.well-known/oauth-authorization-server").json()
        assert meta["client_id_metadata_document_supported"] is False
        url = site.document()
        ends = Endpoints(client, deployment, site)
        page = ends.person.open_page(ends.authorize_url(url, pkce()[1]))
        assert page.status_code == 400
        assert "not accepted here" in page.text
        reply = ends.token(url, "a-code", pkce()[0])
        assert (reply.status_code, reply.json()["reason"]) == (401, "oauth.client_metadata_off")
        assert site.hits == []
        registered = client.post("/oauth/register", json={"redirect_uris": [REDIRECT]})
        client_id = registered.json()["client_id"]
        assert ends.person.open_page(ends.authorize_url(client_id, pkce()[1])).status_code == 200
    deployment.close()


def test_loopback_fetching_needs_a_loopback_issuer(tmp_path: Path) -> None:
    deployment = oauth_home(
        tmp_path / "home",
        public_url="https://cp.example.org",
        resource=RESOURCE,
        bearer=False,
        oauth={"client_metadata_loopback": True},
    )
    with pytest.raises(InvalidInput) as refused:  # printed by the CLI: error <reason>: ...
        OAuthServer(deployment)
    assert refused.value.reason == "config.oauth_client_metadata"
    assert "client_metadata_loopback" in refused.value.message
    deployment.close()


def test_a_document_gone_bad_before_consent_gets_no_code(tmp_path: Path, site: ClientSite) -> None:
    clock = AheadClock()
    for endpoints in _endpoints(tmp_path, site, clock, client_metadata_loopback=True):
        endpoints.deployment.playbooks.apply(parse_playbook(URL_PLAYBOOK, "test"), ADMIN)
        url = site.document()
        first = endpoints.person.open_page(endpoints.authorize_url(url, pkce()[1]))
        second = endpoints.person.open_page(endpoints.authorize_url(url, pkce()[1]))
        clock.ahead += DEFAULT_TTL + 1  # no longer kept: fetched again, and now refused
        site.serve("/client.json", b"{}", 404)
        gone = endpoints.person.submit(first, playbook="url-clients")
        assert gone.status_code == 400
        assert "location" not in gone.headers
        site.document()  # the twin: the document back, the other page consents
        assert endpoints.person.submit(second, playbook="url-clients").status_code == 303


def test_a_name_whose_first_address_is_not_listening_is_fetched_from_the_next(
    site: ClientSite,
) -> None:
    url = site.document()
    parts = check_url(url, issuer=ISSUER, loopback=True)

    def resolver(*addresses: str) -> Any:
        return lambda host, port: list(addresses)

    fetched = fetch(parts, loopback=True, resolver=resolver("127.0.0.2", "127.0.0.1"))
    assert json.loads(fetched.body)["client_id"] == url
    with pytest.raises(ClientDocumentError) as refused:  # two addresses tried, no more
        fetch(parts, loopback=True, resolver=resolver("127.0.0.2", "127.0.0.3", "127.0.0.1"))
    assert _reason(refused) == "oauth.client_metadata_fetch"


def test_a_document_sent_too_slowly_is_refused(
    site: ClientSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = site.document()
    monkeypatch.setattr(oauth_client_documents, "DEADLINE", -1.0)
    with pytest.raises(ClientDocumentError) as refused:
        _fetch(site, "/client.json")
    assert "too slowly" in refused.value.description
    monkeypatch.setattr(oauth_client_documents, "DEADLINE", 10.0)  # the twin
    assert json.loads(_fetch(site, "/client.json"))["client_id"] == url


def test_fetches_at_once_are_bounded(site: ClientSite, monkeypatch: pytest.MonkeyPatch) -> None:
    url = site.document()
    monkeypatch.setattr(oauth_client_documents, "MAX_FETCHES", 1)
    documents = Documents(site)
    release = threading.Event()
    slow = site.url("/slow.json")

    def hold() -> None:
        with contextlib.suppress(ClientDocumentError):
            documents.client(slow, 0.0)

    site.hold = release  # the site keeps /slow.json waiting until released
    holder = threading.Thread(target=hold)
    holder.start()
    assert site.waiting.wait(5)
    with pytest.raises(ClientDocumentError) as refused:
        documents.client(url, 0.0)
    assert _reason(refused) == "oauth.client_metadata_busy"
    release.set()
    holder.join(5)
    assert documents.client(url, 0.0)[0].client_id == url  # the twin: once it is free


def test_a_refresh_needs_the_document_still_there(tmp_path: Path, site: ClientSite) -> None:
    clock = AheadClock()
    for endpoints in _endpoints(tmp_path, site, clock, client_metadata_loopback=True):
        endpoints.deployment.playbooks.apply(parse_playbook(URL_PLAYBOOK, "test"), ADMIN)
        url = site.document()
        verifier, challenge = pkce()
        answer = endpoints.person.consent(
            endpoints.authorize_url(url, challenge), playbook="url-clients"
        )
        key = ec.generate_private_key(ec.SECP256R1())
        first = endpoints.token(url, answer["code"], verifier, key).json()
        refresh = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
        clock.ahead += DEFAULT_TTL + 1  # the document is no longer kept
        site.serve("/client.json", b"{}", 404)
        gone = endpoints.token(url, "", "", key, int(clock.now()), **refresh)
        assert gone.status_code == 401
        assert gone.json()["reason"] == "oauth.client_metadata_status"
        site.document()  # the twin: back, and the same refresh token was not used up
        renewed = endpoints.token(url, "", "", key, int(clock.now()), **refresh)
        assert renewed.status_code == 200, renewed.text
