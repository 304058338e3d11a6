"""Enforcement points: registered with their URLs, known by a credential stored hashed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from zerolane.audit.events import Actor
from zerolane.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from zerolane.identity.enforcement_points import PREFIX, EnforcementPoints, covers
from zerolane.server.deployment import Deployment, init_home

ADMIN = Actor("admin", "t")


@pytest.fixture(params=["memory", "sqlite"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    opened, _ = init_home(tmp_path / "home", "example.org")
    if request.param == "memory":  # the same home over the memory backend
        opened.close()
        config = (tmp_path / "home" / "zerolane.toml").read_text()
        (tmp_path / "home" / "zerolane.toml").write_text(
            config.replace('store_url = "sqlite:///zerolane.db"', 'store_url = "memory://"')
        )
        opened = Deployment.open(tmp_path / "home")
    assert type(opened.stores).__name__.lower().startswith(request.param)
    yield opened
    opened.close()


@pytest.fixture
def points(deployment: Deployment) -> EnforcementPoints:
    return deployment.enforcement_points


def test_a_point_is_known_by_its_credential_and_only_its_hash_is_stored(
    points: EnforcementPoints, deployment: Deployment
) -> None:
    credential, point = points.add(
        "edge", ["https://API.example.org:443/v1", "https://b.example"], ADMIN
    )
    assert credential.startswith(PREFIX)
    assert point.urls == ("https://api.example.org/v1", "https://b.example/")
    assert credential not in point.credential_hash
    assert points.authenticate(credential) == point
    stored = deployment.stores.list_enforcement_points()
    assert stored == [point]
    for record in deployment.stores.read_events(0, 1000):  # never logged either
        assert credential not in record.body
    added = [json.loads(r.body) for r in deployment.stores.read_events(0, 1000)]
    assert [e["details"] for e in added if e["kind"] == "enforcement_point.added"] == [
        {"name": "edge", "urls": ["https://api.example.org/v1", "https://b.example/"]}
    ]


@pytest.mark.parametrize("presented", [None, "", "zla_admin", PREFIX, PREFIX + "guessed"])
def test_anything_but_a_registered_credential_is_refused(
    points: EnforcementPoints, presented: str | None
) -> None:
    credential, _ = points.add("edge", ["https://api.example.org"], ADMIN)
    with pytest.raises(Unauthenticated) as refused:
        points.authenticate(presented)
    assert refused.value.reason == "enforcement_point.credential"
    assert points.authenticate(credential).name == "edge"  # the twin


def test_a_removed_point_is_refused_from_then_on(points: EnforcementPoints) -> None:
    credential, _ = points.add("edge", ["https://api.example.org"], ADMIN)
    other, _ = points.add("tools", ["https://inproc.invalid"], ADMIN)
    assert points.remove("edge", ADMIN).name == "edge"
    with pytest.raises(Unauthenticated):
        points.authenticate(credential)
    assert points.authenticate(other).name == "tools"
    with pytest.raises(NotFound):
        points.remove("edge", ADMIN)


@pytest.mark.parametrize(
    ("url", "covered"),
    [
        ("https://api.example.org/v1", True),
        ("https://api.example.org/v1/reports/q3", True),
        ("https://API.example.org:443/v1/x?q=1", True),
        ("https://api.example.org/v10", False),  # not at a path boundary
        ("https://api.example.org/", False),
        ("http://api.example.org/v1/x", False),
        ("https://api.example.org:8443/v1/x", False),
        ("https://api.example.org.evil.example/v1/x", False),
        ("https://evil.example/v1/x", False),
        ("not a url", False),
    ],
)
def test_a_point_asks_only_about_its_own_urls(
    points: EnforcementPoints, url: str, covered: bool
) -> None:
    _, point = points.add("edge", ["https://api.example.org/v1"], ADMIN)
    if covered:
        points.check_url(point, url)
    else:
        with pytest.raises(Forbidden) as refused:
            points.check_url(point, url)
        assert refused.value.reason == "enforcement_point.url"


def test_a_host_prefix_covers_the_whole_host() -> None:
    assert covers("https://a.example/", "https://a.example/x/y")
    assert not covers("https://a.example/", "https://a.example.evil/x")


@pytest.mark.parametrize(
    ("name", "urls", "reason"),
    [
        ("Edge", ["https://a.example"], "enforcement_point.name"),
        ("", ["https://a.example"], "enforcement_point.name"),
        ("a b", ["https://a.example"], "enforcement_point.name"),
        ("edge", [], "enforcement_point.url"),
        ("edge", ["ftp://a.example"], "enforcement_point.url"),
        ("edge", ["https://a.example/x?y=1"], "enforcement_point.url"),
        ("edge", ["https://user@a.example"], "enforcement_point.url"),
        ("edge", ["/relative"], "enforcement_point.url"),
    ],
)
def test_bad_registrations_are_refused_and_store_nothing(
    points: EnforcementPoints, name: str, urls: list[str], reason: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        points.add(name, urls, ADMIN)
    assert refused.value.reason == reason
    assert points.list() == []


def test_a_name_is_registered_once(points: EnforcementPoints) -> None:
    points.add("edge", ["https://a.example"], ADMIN)
    with pytest.raises(Exception, match="exists") as refused:
        points.add("edge", ["https://b.example"], ADMIN)
    assert getattr(refused.value, "reason", None) == "enforcement_point.exists"
    assert [p.urls for p in points.list()] == [("https://a.example/",)]
