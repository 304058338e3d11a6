"""``[tls]`` (zerolane.toml and a gateway's file) and ``[svid] x509_ttl``: refusals with twins."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from zerolane.config import TlsConfig, parse_config, render_config
from zerolane.errors import InvalidInput
from zerolane.gateway.client_cert import ClientCertSource
from zerolane.gateway.config import parse_gateway_config

BASE: dict[str, Any] = {"trust_domain": "example.org"}
PROXY = {"client_cert_header": "X-Client-Cert", "trusted_proxies": ["127.0.0.1/32", "::1"]}


def test_old_configs_need_nothing_new() -> None:
    config = parse_config(dict(BASE))
    assert config.tls == TlsConfig()
    assert config.svid.x509_ttl == 3600
    assert "tls" not in render_config(config)
    assert "x509_ttl" not in render_config(config)


def test_tls_round_trips() -> None:
    tls = {"cert_file": "s.pem", "key_file": "s.key", "client_cert": "required", **PROXY}
    config = parse_config({**BASE, "tls": tls, "svid": {"x509_ttl": 600}})
    assert config.tls.trusted_proxies == ("127.0.0.1/32", "::1")
    assert config.tls.serves_tls
    again = parse_config(tomllib.loads(render_config(config)))
    assert (again.tls, again.svid.x509_ttl) == (config.tls, 600)


@pytest.mark.parametrize(
    ("tls", "reason"),
    [
        ({"client_cert_header": "X-Client-Cert"}, "config.tls"),  # believed from nobody?
        ({"trusted_proxies": ["127.0.0.1"]}, "config.tls"),
        ({**PROXY, "trusted_proxies": ["localhost"]}, "config.tls"),
        ({**PROXY, "client_cert_header": "Authorization"}, "config.tls"),
        ({**PROXY, "client_cert_header": "X Client"}, "config.tls"),
        ({"cert_file": "s.pem"}, "config.tls"),
        ({"client_cert": "maybe"}, "config.tls"),
        ({"client_cert_headers": "X"}, "config.unknown_key"),
        ({"trusted_proxies": "127.0.0.1"}, "config.type"),
    ],
)
def test_bad_tls_is_refused(tls: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_config({**BASE, "tls": tls})
    assert refused.value.reason == reason
    assert parse_config({**BASE, "tls": PROXY}).tls.client_cert_header == "X-Client-Cert"


@pytest.mark.parametrize("ttl", [0, -1, 366 * 86400])
def test_x509_ttl_bounds(ttl: int) -> None:
    with pytest.raises(InvalidInput):
        parse_config({**BASE, "svid": {"x509_ttl": ttl}})
    assert parse_config({**BASE, "svid": {"x509_ttl": 365 * 86400}}).svid.x509_ttl


def test_gateway_tls_files_are_relative_to_the_file(tmp_path: Path) -> None:
    doc = {
        "public_url": "https://gw.example.org",
        "tls": {"cert_file": "tls/gw.pem", "key_file": "/etc/gw.key", **PROXY},
        "upstreams": [
            {
                "name": "api",
                "base_url": "http://127.0.0.1:9000",
                "prefix": "/api",
                "routes": [{"method": "GET", "path": "/x", "action": "read", "resource": "x"}],
            }
        ],
    }
    config = parse_gateway_config(doc, tmp_path)
    assert config.tls.cert_file == str(tmp_path / "tls/gw.pem")
    assert config.tls.key_file == "/etc/gw.key"
    assert config.tls.client_ca_file is None


@pytest.mark.parametrize(
    ("peer", "trusted"),
    [
        (("127.0.0.1", 1), True),
        (("::1", 1), True),
        (("::ffff:127.0.0.1", 1), True),  # IPv4-mapped
        (("127.0.0.2", 1), False),
        (("10.0.0.1", 1), False),
        (("testclient", 1), False),
        (None, False),
        (("/run/sock", None), False),
    ],
)
def test_trusted_proxies(peer: object, trusted: bool) -> None:
    source = ClientCertSource(
        TlsConfig(client_cert_header="X-Client-Cert", trusted_proxies=("127.0.0.1/32", "::1"))
    )
    assert source.trusts(peer) is trusted
    assert ClientCertSource().trusts(("127.0.0.1", 1)) is False  # no proxies: trust none
