"""The gateway configuration: every refusal names its key, next to a valid twin."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from zerolane.errors import InvalidInput
from zerolane.gateway.config import (
    DEFAULT_MAX_REQUEST,
    DEFAULT_MAX_RESPONSE,
    load_gateway_config,
    parse_gateway_config,
)
from zerolane.gateway.credentials import build_credentials
from zerolane.grants import HmacKeys, StaticSecret

EXAMPLE = Path(__file__).parents[2] / "examples" / "gateway" / "gateway.toml"


def valid() -> dict[str, Any]:
    return {
        "public_url": "http://127.0.0.1:8800",
        "upstreams": [
            {
                "name": "finance",
                "base_url": "http://127.0.0.1:9000/finance",
                "prefix": "/finance",
                "routes": [
                    {
                        "method": "get",
                        "path": "/reports/{id}",
                        "action": "read",
                        "resource": "finance/reports/{id}",
                    }
                ],
            }
        ],
    }


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation setting the dotted ``path`` (``upstreams.0.name``) to ``value``."""

    def apply(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = doc
        for part in parents:
            target = target[int(part)] if part.isdigit() else target.setdefault(part, {})
        if isinstance(target, list):
            target[int(last)] = value
        elif value is _DELETE:
            del target[last]
        else:
            target[last] = value

    return apply


_DELETE = object()
R = "upstreams.0.routes.0"
REFUSALS: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    ("unknown top key", _set("publik_url", "x"), "config.unknown_key", "publik_url"),
    ("unknown nested key", _set("limits.max_body", 1), "config.unknown_key", "limits.max_body"),
    ("unknown route key", _set(f"{R}.verb", "GET"), "config.unknown_key", "routes[0].verb"),
    ("unknown listen key", _set("listen.address", "x"), "config.unknown_key", "listen.address"),
    ("missing public_url", _set("public_url", _DELETE), "config.missing", "public_url"),
    ("missing upstreams", _set("upstreams", _DELETE), "config.missing", "upstreams"),
    ("no upstreams", _set("upstreams", []), "config.missing", "upstreams"),
    ("public_url scheme", _set("public_url", "ftp://gw"), "config.url", "public_url"),
    ("public_url query", _set("public_url", "http://gw/?a"), "config.url", "public_url"),
    ("public_url userinfo", _set("public_url", "http://u@gw"), "config.url", "public_url"),
    ("wrong type", _set("metrics", "yes"), "config.type", "metrics"),
    ("empty audience", _set("audience", " "), "config.missing", "audience"),
    ("port range", _set("listen.port", 70000), "config.port", "listen.port"),
    ("port type", _set("listen.port", True), "config.type", "listen.port"),
    ("size unit", _set("limits.max_request_body", "10 MB"), "config.size", "max_request_body"),
    ("size zero", _set("limits.max_response_body", 0), "config.size", "max_response_body"),
    ("timeout", _set("limits.upstream_timeout", 0), "config.limits", "upstream_timeout"),
    ("body timeout", _set("limits.body_timeout", 0), "config.limits", "body_timeout"),
    ("idle", _set("limits.body_idle_timeout", 3601), "config.limits", "body_idle_timeout"),
    ("non-ascii type", _set("normalization.allow_non_ascii", 1), "config.type", "allow_non_ascii"),
    ("upstream name", _set("upstreams.0.name", "Fin Ance"), "config.name", "upstreams[0].name"),
    ("base_url path", _set("upstreams.0.base_url", "http://h/a/../b"), "config.url", "base_url"),
    ("base_url host", _set("upstreams.0.base_url", "http:///x"), "config.url", "base_url"),
    ("prefix slash", _set("upstreams.0.prefix", "/finance/"), "config.prefix", "prefix"),
    ("prefix root", _set("upstreams.0.prefix", "/"), "config.prefix", "prefix"),
    ("prefix reserved", _set("upstreams.0.prefix", "/metrics"), "config.prefix", "prefix"),
    ("prefix dots", _set("upstreams.0.prefix", "/a/.."), "config.prefix", "prefix"),
    (
        "sensitivity",
        _set("upstreams.0.default_sensitivity", "secret"),
        "config.sensitivity",
        "default_sensitivity",
    ),
    ("no routes", _set("upstreams.0.routes", []), "config.routes", "upstreams[0]"),
    ("route method", _set(f"{R}.method", "GE T"), "config.route_method", "routes[0].method"),
    ("route path", _set(f"{R}.path", "reports/{id}"), "config.route_path", "routes[0].path"),
    ("partial var", _set(f"{R}.path", "/r/{id}.json"), "config.route_path", "whole"),
    ("dot segment", _set(f"{R}.path", "/r/../{id}"), "config.route_path", "routes[0].path"),
    ("empty segment", _set(f"{R}.path", "/r//{id}"), "config.route_path", "routes[0].path"),
    ("repeated var", _set(f"{R}.path", "/{id}/{id}"), "config.route_path", "repeats"),
    ("unknown var", _set(f"{R}.resource", "f/{other}"), "config.route_resource", "other"),
    ("resource glob", _set(f"{R}.resource", "finance/*"), "config.route_resource", "resource"),
    ("resource slash", _set(f"{R}.resource", "/finance/x"), "config.route_resource", "resource"),
    ("missing action", _set(f"{R}.action", _DELETE), "config.missing", "routes[0].action"),
    ("route sensitivity", _set(f"{R}.sensitivity", "top"), "config.sensitivity", "routes[0]"),
    ("route not a table", _set(R, "GET /x"), "config.type", "routes[0]"),
    (
        "credential type",
        _set("upstreams.0.credential", {"type": "oauth"}),
        "config.credential",
        "credential.type",
    ),
    (
        "static needs one source",
        _set("upstreams.0.credential", {"type": "static"}),
        "config.credential",
        "secret_file, secret_env",
    ),
    (
        "static with both sources",
        _set("upstreams.0.credential", {"type": "static", "secret_file": "a", "secret_env": "B"}),
        "config.credential",
        "exactly one",
    ),
    (
        "hmac without key",
        _set("upstreams.0.credential", {"type": "hmac"}),
        "config.missing",
        "key_file",
    ),
    (
        "hmac ttl",
        _set("upstreams.0.credential", {"type": "hmac", "key_file": "k", "ttl": 0}),
        "config.credential",
        "ttl",
    ),
    (
        "credential unknown key",
        _set("upstreams.0.credential", {"type": "hmac", "key_file": "k", "secret": "x"}),
        "config.unknown_key",
        "credential.secret",
    ),
    (
        "hop-by-hop credential header",
        _set("upstreams.0.credential", {"type": "hmac", "key_file": "k", "header": "Connection"}),
        "config.header",
        "Connection",
    ),
    (
        "own credential header",
        _set("upstreams.0.credential", {"type": "hmac", "key_file": "k", "header": "X-Zerolane-T"}),
        "config.header",
        "X-Zerolane-T",
    ),
    (
        "malformed credential header",
        _set("upstreams.0.credential", {"type": "hmac", "key_file": "k", "header": "X Key"}),
        "config.header",
        "X Key",
    ),
    (
        "duplicate route",
        lambda d: d["upstreams"][0]["routes"].append(
            {"method": "GET", "path": "/reports/{x}", "action": "a", "resource": "f/{x}"}
        ),
        "config.route_duplicate",
        "duplicates",
    ),
    (
        "duplicate name",
        lambda d: d["upstreams"].append({**copy.deepcopy(d["upstreams"][0]), "prefix": "/b"}),
        "config.name",
        "upstreams[1].name",
    ),
    (
        "overlapping prefix",
        lambda d: d["upstreams"].append(
            {**copy.deepcopy(d["upstreams"][0]), "name": "b", "prefix": "/finance/x"}
        ),
        "config.prefix",
        "overlaps",
    ),
    ("missing openapi", _set("upstreams.0.openapi", "nope.json"), "config.openapi", "nope.json"),
]


@pytest.mark.parametrize(
    ("name", "mutate", "reason", "key"), REFUSALS, ids=[r[0] for r in REFUSALS]
)
def test_refusals_name_the_key(
    tmp_path: Path, name: str, mutate: Callable[[dict[str, Any]], None], reason: str, key: str
) -> None:
    parse_gateway_config(valid(), tmp_path)  # the twin
    doc = valid()
    mutate(doc)
    with pytest.raises(InvalidInput) as caught:
        parse_gateway_config(doc, tmp_path)
    assert caught.value.reason == reason, caught.value
    assert key in caught.value.message


def test_defaults(tmp_path: Path) -> None:
    config = parse_gateway_config(valid(), tmp_path)
    assert config.audience == "http://127.0.0.1:8800"
    assert (config.listen.host, config.listen.port) == ("127.0.0.1", 8800)
    assert config.limits.max_request_body == DEFAULT_MAX_REQUEST == 10 << 20
    assert config.limits.max_response_body == DEFAULT_MAX_RESPONSE == 100 << 20
    assert config.limits.body_timeout == 10.0  # a slow body holds a worker 10 s at most
    assert config.limits.body_idle_timeout == 5.0  # and pauses 5 s at most
    assert config.normalization.allow_non_ascii is False
    assert config.metrics is False
    (upstream,) = config.upstreams
    assert upstream.destination == "127.0.0.1"
    assert upstream.default_sensitivity == "internal"
    assert upstream.credential is None


def test_sizes_and_trailing_slashes(tmp_path: Path) -> None:
    doc = valid()
    doc["public_url"] = "HTTPS://GW.example.org/base/"
    doc["limits"] = {"max_request_body": "512 KiB", "max_response_body": "1GiB"}
    doc["upstreams"][0]["base_url"] = "http://h:9000/api/"
    config = parse_gateway_config(doc, tmp_path)
    assert config.public_url == "https://GW.example.org/base"
    assert config.limits.max_request_body == 512 << 10
    assert config.limits.max_response_body == 1 << 30
    assert config.upstreams[0].base_url == "http://h:9000/api"


def test_routing_picks_the_prefix_and_the_most_literal_route(tmp_path: Path) -> None:
    doc = valid()
    doc["upstreams"][0]["routes"] += [
        {"method": "GET", "path": "/reports/latest", "action": "latest", "resource": "f/latest"},
        {"method": "GET", "path": "/", "action": "index", "resource": "finance"},
        {"method": "GET", "path": "/reports/{id}/", "action": "dir", "resource": "f/{id}/dir"},
    ]
    config = parse_gateway_config(doc, tmp_path)
    assert config.upstream_for("/financex/a") is None
    assert config.upstream_for("/other") is None
    upstream, rest = config.upstream_for("/finance/reports/q3") or (None, "")
    assert upstream is not None
    assert rest == "/reports/q3"
    routes = upstream.routes

    def action(method: str, rest: str) -> str | None:
        found = routes.match(method, rest)
        return found[0].action if found else None

    assert action("GET", "/reports/q3") == "read"
    assert action("GET", "/reports/latest") == "latest"
    assert action("GET", "/") == "index"
    assert action("GET", "") is None
    assert action("GET", "/reports/q3/") == "dir"
    assert action("GET", "/reports/") is None  # a variable never matches an empty segment
    assert action("POST", "/reports/q3") is None
    route, values = routes.match("GET", "/reports/q3") or (None, {})
    assert route is not None
    assert route.resource_for(values) == "finance/reports/q3"
    assert len(routes) == 4


def test_credentials_are_read_at_startup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = tmp_path / "k.key"
    key.write_bytes(b"x" * 32)
    key.chmod(0o600)
    doc = valid()
    doc["upstreams"][0]["credential"] = {"type": "hmac", "key_file": "k.key", "ttl": 60}
    doc["upstreams"].append(
        {
            **copy.deepcopy(doc["upstreams"][0]),
            "name": "wiki",
            "prefix": "/wiki",
            "credential": {"type": "static", "secret_env": "WIKI_TOKEN", "header": "X-Token"},
        }
    )
    monkeypatch.setenv("WIKI_TOKEN", "t0ken")
    sources = build_credentials(parse_gateway_config(doc, tmp_path))
    assert isinstance(sources["finance"], HmacKeys)
    assert isinstance(sources["wiki"], StaticSecret)
    assert sources["wiki"].header_for("tsk_a", 0) == ("X-Token", "t0ken")
    key.chmod(0o644)
    with pytest.raises(InvalidInput) as caught:
        build_credentials(parse_gateway_config(doc, tmp_path))
    assert caught.value.reason == "grant.file_mode"


OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "t", "version": "1"},
    "paths": {
        "/reports/{id}": {
            "parameters": [{"name": "id", "in": "path"}],
            "get": {"operationId": "getReport", "x-zerolane-sensitivity": "confidential"},
            "delete": {"operationId": "deleteReport"},
            "post": {"summary": "no operationId: left unmapped"},
        },
        "/": {"get": {"operationId": "index"}},
    },
}


def _openapi(tmp_path: Path, spec: Any, name: str = "api.json") -> dict[str, Any]:
    (tmp_path / name).write_text(json.dumps(spec))
    doc = valid()
    del doc["upstreams"][0]["routes"]
    doc["upstreams"][0]["openapi"] = name
    return doc


def test_openapi_import(tmp_path: Path) -> None:
    config = parse_gateway_config(_openapi(tmp_path, OPENAPI), tmp_path)
    routes = {(r.method, r.path): r for r in config.upstreams[0].routes.routes()}
    assert set(routes) == {("GET", "/reports/{id}"), ("DELETE", "/reports/{id}"), ("GET", "/")}
    get = routes["GET", "/reports/{id}"]
    assert (get.action, get.resource, get.sensitivity) == (
        "getReport",
        "finance/reports/{id}",
        "confidential",
    )
    assert routes["DELETE", "/reports/{id}"].sensitivity is None
    assert routes["GET", "/"].resource == "finance"


def test_openapi_yaml_and_routes_together(tmp_path: Path) -> None:
    spec = "openapi: '3.1.0'\npaths:\n  /pages/{slug}:\n    put: {operationId: putPage}\n"
    (tmp_path / "api.yaml").write_text(spec)
    doc = valid()
    doc["upstreams"][0]["openapi"] = "api.yaml"
    config = parse_gateway_config(doc, tmp_path)
    assert len(config.upstreams[0].routes) == 2


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"swagger": "2.0", "paths": {}}, "not an OpenAPI 3"),
        ({"openapi": "3.0.0"}, "no 'paths'"),
        ({"openapi": "3.0.0", "paths": {"/a": []}}, "not an object"),
        ({"openapi": "3.0.0", "paths": {"/a": {"get": {"operationId": 3}}}}, "strings"),
        ({"openapi": "3.0.0", "paths": {"/a/{id}.json": {"get": {"operationId": "g"}}}}, "whole"),
        (
            {
                "openapi": "3.0.0",
                "paths": {"/a": {"get": {"operationId": "g", "x-zerolane-sensitivity": "x"}}},
            },
            "sensitivity",
        ),
    ],
)
def test_openapi_refusals(tmp_path: Path, spec: dict[str, Any], message: str) -> None:
    parse_gateway_config(_openapi(tmp_path, OPENAPI, "twin.json"), tmp_path)
    with pytest.raises(InvalidInput, match=message):
        parse_gateway_config(_openapi(tmp_path, spec), tmp_path)


def test_openapi_unreadable(tmp_path: Path) -> None:
    (tmp_path / "api.json").write_text("{not json")
    doc = valid()
    doc["upstreams"][0]["openapi"] = "api.json"
    with pytest.raises(InvalidInput, match="not valid JSON"):
        parse_gateway_config(doc, tmp_path)


def test_files_toml_and_yaml(tmp_path: Path) -> None:
    yaml_file = tmp_path / "gw.yaml"
    yaml_file.write_text(json.dumps(valid()))  # JSON is YAML
    assert load_gateway_config(yaml_file).public_url == "http://127.0.0.1:8800"
    broken = tmp_path / "gw.toml"
    broken.write_text("public_url = ")
    with pytest.raises(InvalidInput) as caught:
        load_gateway_config(broken)
    assert caught.value.reason == "config.syntax"
    with pytest.raises(InvalidInput) as caught:
        load_gateway_config(tmp_path / "missing.toml")
    assert caught.value.reason == "config.file"
    (tmp_path / "list.yaml").write_text("- a\n")
    with pytest.raises(InvalidInput, match="the document must be a table"):
        load_gateway_config(tmp_path / "list.yaml")


def test_the_example_configuration_is_valid() -> None:
    config = load_gateway_config(EXAMPLE)
    assert [u.name for u in config.upstreams] == ["finance", "wiki"]
    assert (
        os.path.basename(
            str(config.upstreams[0].credential and config.upstreams[0].credential.key_file)
        )
        == "finance.key"
    )


def test_every_problem_of_a_file_is_refused_at_once(tmp_path: Path) -> None:
    doc = valid()
    doc["listen"] = {"port": "8800"}
    doc["metrcs"] = True
    path = tmp_path / "gw.yaml"
    path.write_text(json.dumps(doc))
    with pytest.raises(InvalidInput) as caught:
        load_gateway_config(path)
    assert caught.value.reason == "config.invalid"
    assert caught.value.message.splitlines() == [
        f"{path}: listen.port: must be an integer, not str",
        f"{path}: metrcs: unknown key (known: public_url, upstreams, audience, listen, limits, "
        "normalization, metrics, tls, http)",
    ]


def test_every_route_problem_is_refused_at_once(tmp_path: Path) -> None:
    doc = valid()
    doc["upstreams"][0]["routes"].append(
        {"method": "GET", "path": "r/{id}", "action": "a", "resource": "f/{id}"}
    )
    doc["upstreams"].append({**copy.deepcopy(valid()["upstreams"][0]), "name": "b"})
    path = tmp_path / "gw.yaml"
    path.write_text(json.dumps(doc))
    with pytest.raises(InvalidInput) as caught:
        load_gateway_config(path)
    assert caught.value.reason == "config.invalid"
    lines = caught.value.message.splitlines()
    assert [line.split(": ")[1] for line in lines] == [
        "upstreams[0].routes[1].path must start with '/'",
        "upstreams[1].prefix",
    ]
    assert all(line.startswith(f"{path}: ") for line in lines)


def test_a_key_that_is_no_name_is_an_unknown_key(tmp_path: Path) -> None:
    path = tmp_path / "gw.yaml"
    path.write_text(json.dumps(valid())[:-1] + ', "1": true}')  # a string that names nothing
    with pytest.raises(InvalidInput) as caught:
        load_gateway_config(path)
    assert caught.value.message.startswith(f"{path}: 1: unknown key (known: public_url, ")
    path.write_text(json.dumps(valid())[:-1] + ", 1: true}")  # YAML reads an integer key
    with pytest.raises(InvalidInput) as caught:
        load_gateway_config(path)
    assert caught.value.reason == "config.unknown_key"
    assert caught.value.message.startswith(f"{path}: [1]: unknown key (known: public_url, ")


# shadow mode: per route, or the upstream's for its routes (an OpenAPI document's too)


def test_a_route_in_shadow_is_named_as_decisions_name_it(tmp_path: Path) -> None:
    doc = valid()
    finance = doc["upstreams"][0]
    finance["routes"].append(
        {"method": "DELETE", "path": "/reports/{id}", "action": "delete", "resource": "r/{id}"}
    )
    finance["routes"][1]["mode"] = "shadow"
    config = parse_gateway_config(doc, tmp_path)
    table = config.upstreams[0].routes
    delete = table.match("DELETE", "/reports/q3")
    get = table.match("GET", "/reports/q3")
    assert delete is not None
    assert get is not None
    assert delete[0].shadow == "route:finance DELETE /reports/{id}"
    assert get[0].shadow is None  # the twin: enforced by default


def test_an_upstream_in_shadow_puts_its_routes_there_unless_one_says_enforce(
    tmp_path: Path,
) -> None:
    doc = valid()
    finance = doc["upstreams"][0]
    finance["mode"] = "shadow"
    finance["routes"].append(
        {"method": "POST", "path": "/upload", "action": "write", "resource": "u", "mode": "enforce"}
    )
    (tmp_path / "api.json").write_text(
        json.dumps(
            {
                "openapi": "3.1.0",
                "info": {"title": "t", "version": "1"},
                "paths": {"/docs/{name}": {"get": {"operationId": "getDoc"}}},
            }
        )
    )
    finance["openapi"] = "api.json"
    table = parse_gateway_config(doc, tmp_path).upstreams[0].routes
    shadows = {f"{r.method} {r.path}": r.shadow for r in table.routes()}
    assert shadows == {
        "GET /reports/{id}": "route:finance GET /reports/{id}",
        "GET /docs/{name}": "route:finance GET /docs/{name}",
        "POST /upload": None,
    }


@pytest.mark.parametrize("where", ["upstreams.0.mode", "upstreams.0.routes.0.mode"])
def test_an_unknown_mode_is_refused_with_its_key(tmp_path: Path, where: str) -> None:
    doc = valid()
    _set(where, "audit")(doc)
    with pytest.raises(InvalidInput) as refused:
        parse_gateway_config(doc, tmp_path)
    assert refused.value.reason == "config.mode"
    assert where.replace(".0", "[0]") in refused.value.message
