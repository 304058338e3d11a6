"""The gateway config: strict TOML, each refusal naming its key."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from zerolane.errors import InvalidInput
from zerolane.gateway.mcp import load_gateway_config, parse_gateway_config
from zerolane.types import Sensitivity

BASE: dict[str, Any] = {
    "public_url": "https://mcp.example.org",
    "authorization_servers": ["https://zerolane.example.org"],
    "servers": [
        {"name": "reports", "command": "python", "args": ["s.py"], "destination": "reports.int"},
        {
            "name": "chat",
            "url": "https://chat.example.org/mcp",
            "destination": "chat.example.org",
            "prefix": "chat_",
        },
    ],
}


def doc(**changes: Any) -> dict[str, Any]:
    document = copy.deepcopy(BASE)
    document.update(changes)
    return document


def server(index: int = 0, **changes: Any) -> dict[str, Any]:
    document = copy.deepcopy(BASE)
    document["servers"][index].update(changes)
    return document


def refusal(document: dict[str, Any]) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        parse_gateway_config(document, Path("/etc/zerolane"))
    return caught.value


def test_defaults() -> None:
    config = parse_gateway_config(doc(), Path("/etc/zerolane"))
    assert (config.host, config.port, config.path) == ("127.0.0.1", 8800, "/mcp")
    assert config.endpoint == config.audience == "https://mcp.example.org/mcp"
    reports, chat = config.servers
    assert reports.command == "python"
    assert reports.args == ("s.py",)
    assert reports.default_sensitivity is Sensitivity.INTERNAL
    assert reports.destructive_sensitivity is Sensitivity.CONFIDENTIAL
    assert chat.url == "https://chat.example.org/mcp"
    assert chat.prefix == "chat_"
    assert reports.call_timeout == chat.call_timeout == 300.0
    assert parse_gateway_config(server(call_timeout=2.5), Path("/x")).servers[0].call_timeout == 2.5


def test_every_setting_is_read() -> None:
    chat = {
        "name": "chat",
        "url": "https://chat.example.org/mcp",
        "destination": "chat.example.org",
        "prefix": "chat_",
        "default_sensitivity": "public",
        "destructive_sensitivity": "public",
        "tools": {"post_message": {"sensitivity": "restricted"}, "ping": {}},
    }
    reports = {**BASE["servers"][0], "cwd": "servers", "env": {"LEVEL": "debug"}}
    config = parse_gateway_config(
        doc(
            listen={"host": "192.0.2.1", "port": 9000},
            path="/tools/mcp",
            audience="https://tools.example.org/",
            resource_name="Tools",
            max_body_bytes=2048,
            servers=[reports, chat],
        ),
        Path("/etc/zerolane"),
    )
    assert (config.host, config.port, config.max_body_bytes) == ("192.0.2.1", 9000, 2048)
    assert config.endpoint == "https://mcp.example.org/tools/mcp"
    assert config.audience == "https://tools.example.org/"
    assert config.servers[0].cwd == "/etc/zerolane/servers"
    assert config.servers[0].env == {"LEVEL": "debug"}
    parsed = config.servers[1]
    assert parsed.default_sensitivity is Sensitivity.PUBLIC
    assert parsed.destructive_sensitivity is Sensitivity.PUBLIC  # never below the default
    assert parsed.tools["post_message"].sensitivity is Sensitivity.RESTRICTED
    assert parsed.tools["ping"].sensitivity is None


@pytest.mark.parametrize(
    ("document", "reason", "where"),
    [
        (doc(listen_port=1), "config.unknown_key", "listen_port"),
        (doc(listen={"port": 1, "tls": True}), "config.unknown_key", "listen.tls"),
        (server(retries=3), "config.unknown_key", "servers[0].retries"),
        (
            server(tools={"read": {"sensitivty": "public"}}),
            "config.unknown_key",
            "servers[0].tools.read.sensitivty",
        ),
        (doc(public_url="mcp.example.org"), "config.url", "public_url"),
        (doc(public_url="https://mcp.example.org/mcp"), "config.url", "public_url"),
        (doc(audience="urn:zerolane:mcp"), "config.url", "audience"),
        (doc(authorization_servers=[]), "config.missing", "authorization_servers"),
        (doc(authorization_servers="https://a"), "config.type", "authorization_servers"),
        (doc(servers=[]), "config.missing", "servers"),
        (doc(path="mcp/"), "config.path", "path"),
        (doc(listen={"port": 0}), "config.port", "listen.port"),
        (doc(listen={"port": True}), "config.type", "listen.port"),
        (doc(max_body_bytes=10), "config.max_body_bytes", "max_body_bytes"),
        (server(url="https://x.example.org/mcp"), "config.server", "exactly one"),
        (server(1, args=["x"]), "config.server", "need a command"),
        (server(name="re/ports"), "config.name", "name"),
        (server(destination="a b"), "config.name", "destination"),
        (server(default_sensitivity="secret"), "config.sensitivity", "default_sensitivity"),
        (server(tools={"a/b": {}}), "config.name", "tools"),
        (server(1, name="reports"), "config.duplicate", "name"),
        (server(1, prefix=""), "config.duplicate", "prefix"),
        (server(1, url="ftp://chat.example.org/"), "config.url", "url"),
        (server(env={"A": 1}), "config.type", "env.A"),
        (server(call_timeout=0), "config.range", "call_timeout"),
        (server(call_timeout=86400), "config.range", "call_timeout"),
        (server(call_timeout="5m"), "config.type", "call_timeout"),
        (server(call_timeout=True), "config.type", "call_timeout"),
        (doc(servers=[{"name": "x", "command": "y"}]), "config.missing", "destination"),
        (
            server(resources=[{"uri": "", "sensitivity": "public"}]),
            "config.uri",
            "resources[0].uri",
        ),
        (
            server(resources=[{"uri": "x" * 1025, "sensitivity": "public"}]),
            "config.uri",
            "resources[0].uri",
        ),
        (server(resources=[{"uri": "file:///*"}]), "config.missing", "resources[0].sensitivity"),
        (server(resources=[{"uri": 1, "sensitivity": "public"}]), "config.type", "uri"),
        (
            server(resources=[{"uri": "a", "sensitivity": "public", "scheme": "a"}]),
            "config.unknown_key",
            "servers[0].resources[0].scheme",
        ),
        (server(resources={"uri": "a", "sensitivity": "public"}), "config.type", "resources"),
        (server(prompts={"a b": {}}), "config.name", "prompts"),
        (
            server(prompts={"p": {"sensitivty": "public"}}),
            "config.unknown_key",
            "servers[0].prompts.p.sensitivty",
        ),
        (server(mode="audit"), "config.mode", "servers[0].mode"),
        (server(tools={"read": {"mode": "off"}}), "config.mode", "servers[0].tools.read.mode"),
        (server(prompts={"p": {"mode": True}}), "config.mode", "servers[0].prompts.p.mode"),
    ],
)
def test_refusals_name_their_key(document: dict[str, Any], reason: str, where: str) -> None:
    error = refusal(document)
    assert error.reason == reason
    assert where in error.message


def test_every_problem_of_a_file_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(
        'public_url = "https://mcp.example.org"\nauthorization_servers = []\n'
        '[[servers]]\nname = "s"\ncommand = "python"\ndestination = "d"\nretries = 3\n'
    )
    with pytest.raises(InvalidInput) as caught:
        load_gateway_config(path)
    assert caught.value.reason == "config.invalid"
    assert caught.value.message.splitlines() == [
        f"{path}: authorization_servers: needs at least one entry",
        f"{path}: servers[0].retries: unknown key (known: name, destination, url, command, "
        "args, env, cwd, default_sensitivity, destructive_sensitivity, prefix, call_timeout, "
        "tools, resources, prompts, credential, mode)",
    ]


def test_load_reads_toml_and_refuses_missing_or_broken_files(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    with pytest.raises(InvalidInput, match="no gateway config"):
        load_gateway_config(path)
    path.write_text("public_url = [")
    with pytest.raises(InvalidInput) as caught:
        load_gateway_config(path)
    assert caught.value.reason == "config.syntax"
    path.write_text(
        'public_url = "http://127.0.0.1:8800"\n'
        'authorization_servers = ["http://127.0.0.1:8700"]\n'
        '[[servers]]\nname = "s"\ncommand = "python"\ndestination = "d"\ncwd = "."\n'
    )
    assert load_gateway_config(path).servers[0].cwd == str(tmp_path.resolve())


def test_tls_files_are_relative_to_the_config_file() -> None:
    tls = {"cert_file": "tls/gw.pem", "key_file": "tls/gw.key", "client_cert": "required"}
    config = parse_gateway_config(doc(tls=tls), Path("/etc/zerolane"))
    assert (config.tls.cert_file, config.tls.key_file) == (
        "/etc/zerolane/tls/gw.pem",
        "/etc/zerolane/tls/gw.key",
    )
    assert config.tls.client_cert == "required"
    assert config.client_certificates
    assert not parse_gateway_config(doc(), Path("/etc/zerolane")).client_certificates
    no_client_auth = tls | {"client_cert": "none"}
    assert not parse_gateway_config(doc(tls=no_client_auth)).client_certificates
    header = {"client_cert_header": "X-Client-Cert", "trusted_proxies": ["10.0.0.1/32"]}
    proxied = parse_gateway_config(doc(tls=header))
    assert proxied.client_certificates
    assert proxied.tls.trusted_proxies == ("10.0.0.1/32",)


@pytest.mark.parametrize(
    "tls",
    [
        {"cert_file": "gw.pem"},  # without key_file
        {"client_cert_header": "X-Client-Cert"},  # without trusted_proxies
        {"trusted_proxies": ["10.0.0.1"]},  # without a header
        {"client_cert_header": "X-Client-Cert", "trusted_proxies": ["not an address"]},
        {"client_cert": "sometimes"},
        {"ca_file": "x.pem"},  # unknown key
    ],
)
def test_tls_is_checked_strictly(tls: dict[str, Any]) -> None:
    assert refusal(doc(tls=tls)).reason.startswith("config.")


@pytest.mark.parametrize("value", [False, True, 0, 3, 1.0], ids=repr)
@pytest.mark.parametrize(
    "key", ["default_sensitivity", "destructive_sensitivity", "tool", "resource", "prompt"]
)
def test_a_sensitivity_is_a_label_never_a_number_or_boolean(key: str, value: object) -> None:
    """``sensitivity = false`` on a salary tool must not make its reads public (the
    egress rule would never see the task tainted): refused, the label twin read."""

    def with_level(level: object) -> dict[str, Any]:
        if key == "tool":
            return server(tools={"read_salaries": {"sensitivity": level}})
        if key == "resource":
            return server(resources=[{"uri": "file:///salaries/*", "sensitivity": level}])
        if key == "prompt":
            return server(prompts={"read_salaries": {"sensitivity": level}})
        return server(0, **{key: level})

    error = refusal(with_level(value))
    assert error.reason == "config.type"
    assert "must be a sensitivity label" in error.message
    config = parse_gateway_config(with_level("confidential"), Path("/etc/zerolane"))
    reports = config.servers[0]
    if key == "tool":
        assert reports.tools["read_salaries"].sensitivity is Sensitivity.CONFIDENTIAL
    elif key == "resource":
        assert reports.resources[0].sensitivity is Sensitivity.CONFIDENTIAL
    elif key == "prompt":
        assert reports.prompts["read_salaries"].sensitivity is Sensitivity.CONFIDENTIAL
    else:
        assert getattr(reports, key) is Sensitivity.CONFIDENTIAL


def test_resource_rules_and_prompts_are_read_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(
        'public_url = "https://mcp.example.org"\n'
        'authorization_servers = ["https://zerolane.example.org"]\n'
        '[[servers]]\nname = "docs"\ncommand = "python"\ndestination = "docs.int"\n'
        '[[servers.resources]]\nuri = "file:///finance/*"\nsensitivity = "confidential"\n'
        '[[servers.resources]]\nuri = "file:///*"\nsensitivity = "public"\n'
        '[servers.prompts.summarize]\nsensitivity = "internal"\n'
        "[servers.prompts.plain]\n"
    )
    (docs,) = load_gateway_config(path).servers
    assert [(rule.uri, rule.sensitivity) for rule in docs.resources] == [
        ("file:///finance/*", Sensitivity.CONFIDENTIAL),
        ("file:///*", Sensitivity.PUBLIC),
    ]
    assert docs.resources[0].matches("file:///finance/q3/raw.csv")
    assert not docs.resources[0].matches("file:///Finance/q3")  # case-sensitive
    assert docs.prompts["summarize"].sensitivity is Sensitivity.INTERNAL
    assert docs.prompts["plain"].sensitivity is None
    (defaults,) = parse_gateway_config(doc(servers=[BASE["servers"][0]])).servers
    assert (defaults.resources, defaults.prompts) == ((), {})


def test_modes_default_to_enforce_and_shadow_is_read_per_server_tool_and_prompt() -> None:
    config = parse_gateway_config(doc(), Path("/etc/zerolane"))
    assert [s.mode for s in config.servers] == ["enforce", "enforce"]
    shadowed = server(
        mode="shadow",
        tools={"delete": {"mode": "enforce"}, "read": {"sensitivity": "public"}},
        prompts={"brief": {"mode": "enforce"}},
    )
    reports = parse_gateway_config(shadowed, Path("/etc/zerolane")).servers[0]
    assert reports.mode == "shadow"
    assert (reports.tools["delete"].mode, reports.tools["read"].mode) == ("enforce", None)
    assert reports.prompts["brief"].mode == "enforce"
