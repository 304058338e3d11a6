"""The probe's listener: serves what is published at unguessable paths, records who
fetched it, answers nothing else, and says clearly when it cannot listen."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from zerolane.probe.callback import Callback, CallbackUnavailable, parse_callback_url


@pytest.fixture
def callback() -> Iterator[Callback]:
    listener = Callback()
    yield listener
    listener.close()


def test_a_published_document_is_served_and_its_fetches_recorded(callback: Callback) -> None:
    url = callback.publish("jwks.json", b'{"keys":[]}', "application/jwk-set+json")
    assert url.startswith("http://127.0.0.1:")
    assert url.endswith("/jwks.json")
    assert callback.port != 0  # the bound port, not the one asked for
    assert callback.fetches(url) == []
    answer = httpx.get(url, headers={"User-Agent": "weak-verifier/1"})
    assert answer.status_code == 200
    assert answer.content == b'{"keys":[]}'
    assert answer.headers["content-type"] == "application/jwk-set+json"
    assert answer.headers["cache-control"] == "no-store"
    head = httpx.head(url + "?q=1")  # a query does not hide the fetch
    assert head.status_code == 200
    assert head.content == b""
    (first, second) = callback.fetches(url)
    assert (first.method, first.user_agent) == ("GET", "weak-verifier/1")
    assert first.client.startswith("127.0.0.1:")
    assert second.method == "HEAD"


def test_other_paths_are_not_found_and_not_recorded(callback: Callback) -> None:
    url = callback.publish("chain.pem", b"pem", "application/pem-certificate-chain")
    other = callback.publish("chain.pem", b"pem", "application/pem-certificate-chain")
    assert url != other  # each publication has a path of its own
    assert httpx.get(callback.base + "/chain.pem").status_code == 404
    assert httpx.post(url).status_code == 501  # GET and HEAD only
    assert httpx.get(other).status_code == 200
    assert callback.fetches(url) == []
    assert callback.fetches(callback.base + "/chain.pem") == []
    assert len(callback.fetches(other)) == 1


def test_a_late_fetch_is_waited_for(callback: Callback) -> None:
    url = callback.publish("jwks.json", b"{}", "application/json")
    fetcher = threading.Timer(0.2, lambda: httpx.get(url))
    fetcher.start()
    try:
        assert len(callback.fetches(url, wait=10)) == 1
    finally:
        fetcher.join()


def test_fetches_are_kept_up_to_a_bound(callback: Callback) -> None:
    url = callback.publish("jwks.json", b"{}", "application/json")
    with httpx.Client() as client:
        for _ in range(20):
            client.get(url)
    assert len(callback.fetches(url)) == 16


def test_closed_it_answers_no_more() -> None:
    listener = Callback()
    listener.close()  # never started: nothing to stop
    url = listener.publish("jwks.json", b"{}", "application/json")
    listener.close()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url)


def test_an_address_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        listener = Callback(f"http://127.0.0.1:{port}")
        with pytest.raises(CallbackUnavailable, match=f"cannot listen on 127.0.0.1 port {port}"):
            listener.publish("jwks.json", b"{}", "application/json")


def test_localhost_is_loopback() -> None:
    listener = Callback("http://localhost")
    try:
        url = listener.publish("jwks.json", b"{}", "application/json")
        assert url.startswith(f"http://localhost:{listener.port}/")
        assert httpx.get(url).status_code == 200
    finally:
        listener.close()


def test_a_host_name_is_named_in_the_urls_and_listened_for_on_every_interface() -> None:
    """The name is the target's to resolve; the probe listens on every IPv4 address
    (so loopback reaches it too)."""
    listener = Callback("http://probe.invalid")
    try:
        url = listener.publish("jwks.json", b"{}", "application/json")
        assert url.startswith(f"http://probe.invalid:{listener.port}/")
        path = url.split(str(listener.port), 1)[1]
        assert httpx.get(f"http://127.0.0.1:{listener.port}{path}").status_code == 200
    finally:
        listener.close()


def test_an_ipv6_literal_is_bracketed() -> None:
    listener = Callback("http://[::1]:0")
    try:
        url = listener.publish("jwks.json", b"{}", "application/json")
    except CallbackUnavailable as err:  # pragma: no cover  (a host without IPv6 loopback)
        refused = str(err)
        # refused as unavailable, naming the address: the scenario is then inconclusive
        assert refused.startswith("cannot listen on ::1 port 0")
        return
    try:
        assert url.startswith(f"http://[::1]:{listener.port}/")
        assert httpx.get(url).status_code == 200
    finally:
        listener.close()


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("https://probe.example:8443", "http://host"),
        ("http://", "http://host"),
        ("http://user:pw@probe.example:80", "no user or password"),
        ("http://probe.example:80/jwks", "no path"),
        ("http://probe.example:80?x=1", "no path"),
        ("http://probe.example:99999", "0-65535"),
    ],
)
def test_a_bad_callback_url_says_what_is_wrong(url: str, said: str) -> None:
    with pytest.raises(ValueError, match=said):
        parse_callback_url(url)


def test_a_good_callback_url_gives_host_and_port() -> None:
    assert parse_callback_url("http://10.0.0.5:8765/") == ("10.0.0.5", 8765)
    assert parse_callback_url("http://probe.internal") == ("probe.internal", 0)
