"""Path normalization bypasses and method overrides: zerolane's gateway refuses every
trick (and drops the override headers) while the allowed twin goes through; a target
that decides on the raw path and serves the normalized one, or honours an override, is
reported ``fail``."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from time import time_ns

import httpx
import pytest

from tests.probe.scenarios.lax_server import ALLOWED, FORBIDDEN, TOKEN, Lax, lax_server, normalized
from tests.probe.scenarios.weak import ALL, FAILS, weak_context
from tests.probe.weak_target import Weakness
from zerolane.probe.context import ProbeContext
from zerolane.probe.credentials import StaticBearer
from zerolane.probe.model import Outcome, Result
from zerolane.probe.profile import Call, TargetProfile
from zerolane.probe.runner import run, run_one
from zerolane.probe.scenarios import by_id, paths
from zerolane.probe.wire import Wire

PATH_IDS = [
    "path.encoded_dots",
    "path.encoded_slash",
    "path.semicolon",
    "path.backslash",
    "path.double_encoding",
]


@contextmanager
def lax_target(
    lax: Lax = Lax(),
    *,
    forbidden: Call | None = Call("DELETE", ALLOWED),
    forbidden_path: Call | None = Call("GET", FORBIDDEN),
) -> Iterator[ProbeContext]:
    """A probe context against a lax server (with a bearer token it accepts)."""
    with lax_server(lax) as url:
        profile = TargetProfile(url, Call("GET", ALLOWED), forbidden, forbidden_path=forbidden_path)
        context = ProbeContext(profile, StaticBearer(TOKEN), Wire(timeout=5))
        try:
            yield context
        finally:
            context.close()
            context.wire.close()


@pytest.fixture
def lax() -> Iterator[ProbeContext]:
    with lax_target() as context:
        yield context


def results(context: ProbeContext) -> dict[str, Result]:
    report = run(paths.SCENARIOS, context)
    return {r.scenario: r for r in report.results}


def test_every_path_trick_and_override_is_refused_by_the_gateway(
    gateway_context: ProbeContext,
) -> None:
    found = results(gateway_context)
    assert {k: r.outcome for k, r in found.items()} == dict.fromkeys(
        [*PATH_IDS, "method.override"], Outcome.PASS
    )
    for scenario in PATH_IDS:
        plain, twin, *attacks = found[scenario].evidence
        assert (plain.role, plain.method, plain.status) == ("setup", "GET", 403)
        assert plain.url.endswith("/finance/reports/payroll")
        assert (twin.role, twin.status) == ("twin", 200)
        assert attacks
        assert all(a.role == "attack" and a.status == 400 for a in attacks)
        assert all(
            a.url.startswith(gateway_context.profile.url + "/finance/reports/") for a in attacks
        )
    again, twin, *overrides = found["method.override"].evidence
    assert [again.status, twin.status] == [200, 200]
    assert [a.status for a in overrides] == [200, 200, 200]
    assert {name for a in overrides for name in a.request_headers} >= {
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
    }
    token = gateway_context.credential().token
    assert token not in repr([r.evidence for r in found.values()])


def test_the_attacks_are_sent_byte_for_byte(gateway_context: ProbeContext) -> None:
    found = results(gateway_context)
    sent = {a.url.partition("/finance/")[2] for r in found.values() for a in r.evidence}
    assert "reports/q3/%2e%2e/payroll" in sent
    assert "reports/q3/..%2fpayroll" in sent
    assert "reports/q3/..;/payroll" in sent
    assert "reports/q3/..\\payroll" in sent
    assert "reports/q3/%252e%252e%252fpayroll" in sent
    assert "reports/%2e%2e/reports/payroll" in sent


def test_a_sound_target_passes_every_scenario(lax: ProbeContext) -> None:
    found = results(lax)
    assert {k: r.outcome for k, r in found.items()} == dict.fromkeys(
        [*PATH_IDS, "method.override"], Outcome.PASS
    )
    # a sound target that ignores the override answers as to the plain request; the
    # counter in its answers differs each time and is not mistaken for an effect
    assert all(a.status == 200 for a in found["method.override"].evidence)


def test_a_target_normalizing_after_deciding_fails_every_path_trick() -> None:
    with lax_target(Lax(normalizes_after_deciding=True)) as context:
        found = results(context)
    assert {k: r.outcome for k, r in found.items()} == {
        **dict.fromkeys(PATH_IDS, Outcome.FAIL),
        "method.override": Outcome.PASS,
    }
    for scenario in PATH_IDS:
        assert "the attack was accepted" in found[scenario].reason
        assert any(a.status == 200 for a in found[scenario].evidence if a.role == "attack")


def test_a_target_honouring_method_overrides_fails() -> None:
    with lax_target(Lax(honours_override=True)) as context:
        result = run_one(by_id()["method.override"], context)
    assert result.outcome is Outcome.FAIL
    overrides = [a for a in result.evidence if a.role == "attack"]
    assert [a.status for a in overrides] == [200, 200, 200]
    assert b'"deleted"' in overrides[0].body


def test_a_forbidden_request_that_goes_through_is_inconclusive() -> None:
    with lax_target(forbidden_path=Call("GET", ALLOWED + "?x=1")) as context:
        result = run_one(by_id()["path.semicolon"], context)
    assert result.outcome is Outcome.INCONCLUSIVE
    assert "the forbidden request is not forbidden" in result.reason


def test_a_forbidden_request_differing_by_method_only_leaves_nothing_to_reach() -> None:
    with lax_target(forbidden_path=None) as context:
        assert paths.path_target(context) is None
        result = run_one(by_id()["path.encoded_dots"], context)
        assert result.outcome is Outcome.NOT_APPLICABLE
    with lax_target(forbidden=Call("GET", FORBIDDEN), forbidden_path=None) as same:
        assert paths.path_target(same) == Call("GET", FORBIDDEN)
        assert run_one(by_id()["path.encoded_dots"], same).outcome is Outcome.PASS
        # the same method both ways: no method to name in an override
        override = run_one(by_id()["method.override"], same)
        assert override.outcome is Outcome.NOT_APPLICABLE


def test_without_a_forbidden_request_the_scenarios_do_not_apply() -> None:
    with lax_target(forbidden=None, forbidden_path=None) as context:
        outcomes = {r.scenario: r.outcome for r in run(paths.SCENARIOS, context).results}
    assert set(outcomes.values()) == {Outcome.NOT_APPLICABLE}


def test_the_tricked_paths_start_in_the_allowed_directory_and_resolve_to_the_target() -> None:
    for allowed, forbidden in [
        ("/finance/reports/q3", "/finance/reports/payroll"),
        ("/public/x", "/admin/x"),
        ("/a/b", "/a/b/c"),
        ("/a", "/b/c/d"),
    ]:
        for trick in paths.TRICKS:
            for climb in trick.climbs:
                found = paths.tricked_paths(allowed, forbidden, climb)
                assert found
                for path in found:
                    assert path.startswith(allowed.rsplit("/", 1)[0] + "/")
                    assert normalized(path) == forbidden
    assert paths.tricked_paths("/", "/a", "../") == []
    assert paths.tricked_paths("/a", "/b?x=1", "..;/") == ["/a/..;/b?x=1"]


@pytest.mark.parametrize(
    ("first", "second", "other", "agree"),
    [
        ({"a": 1, "t": 5}, {"a": 1, "t": 6}, {"a": 1, "t": 7}, True),
        ({"a": 1, "t": 5}, {"a": 1, "t": 6}, {"a": 2, "t": 7}, False),
        ({"a": 1}, {"a": 1}, {"a": 1, "b": 2}, False),
        ([1, 2], [1, 3], [1, 9], True),
        ([1, 2], [1, 3], [1, 9, 9], False),
        ([1, 2], [1, 2, 3], ["anything"], True),
        ({"a": 1}, {"b": 1}, "anything", True),
        ({"h": [["x", "1"]]}, {"h": [["x", "2"]]}, {"h": [["y", "3"]]}, False),
    ],
)
def test_answers_agree_on_what_two_plain_answers_share(
    first: object, second: object, other: object, agree: bool
) -> None:
    assert paths.agrees(first, second, other) is agree


@pytest.mark.parametrize("weakness", ALL, ids=str)
def test_against_the_weak_target_only_the_matching_weakness_fails(
    weakness: Weakness | None,
) -> None:
    """The path tricks fail against the target that normalizes after deciding, the
    override against the one honouring it; against every other weakness (and the sound
    target) nothing here fails."""
    with weak_context(weakness) as context:
        found = results(context)
    failed = {k for k, r in found.items() if r.outcome is Outcome.FAIL}
    assert failed == FAILS.get(weakness, frozenset()) & found.keys()
    if weakness is None:
        assert {r.outcome for r in found.values()} == {Outcome.PASS}


Answer = Callable[[httpx.Request], httpx.Response]


@contextmanager
def mocked(answer: Answer, *, allowed: str = ALLOWED) -> Iterator[ProbeContext]:
    """A context whose wire gets ``answer``'s responses (no server)."""
    wire = Wire(client=httpx.Client(transport=httpx.MockTransport(answer)))
    profile = TargetProfile(
        "http://target.test",
        Call("GET", allowed),
        Call("DELETE", allowed),
        forbidden_path=Call("GET", FORBIDDEN),
    )
    try:
        yield ProbeContext(profile, StaticBearer(TOKEN), wire)
    finally:
        wire.close()


def normalizing_redirect(request: httpx.Request) -> httpx.Response:
    """A server that sends a path with tricks to its normalized form (as Go's mux does)
    and refuses the forbidden one."""
    raw = request.url.raw_path.decode()
    if normalized(raw) != raw:
        return httpx.Response(301, headers={"Location": normalized(raw)})
    return httpx.Response(403 if raw == FORBIDDEN else 200)


def test_a_redirect_to_the_forbidden_path_itself_is_no_bypass() -> None:
    with mocked(normalizing_redirect) as context:
        found = {r.scenario: r for r in run(paths.SCENARIOS[:5], context).results}
    assert {r.outcome for r in found.values()} == {Outcome.PASS}
    assert all(a.status == 301 for r in found.values() for a in r.evidence if a.role == "attack")


def test_a_redirect_elsewhere_is_accepted() -> None:
    def elsewhere(request: httpx.Request) -> httpx.Response:
        raw = request.url.raw_path.decode()
        if normalized(raw) != raw:
            return httpx.Response(302, headers={"Location": "/forbidden/item/download"})
        return httpx.Response(403 if raw == FORBIDDEN else 200)

    with mocked(elsewhere) as context:
        assert run_one(by_id()["path.semicolon"], context).outcome is Outcome.FAIL


def test_the_root_as_the_allowed_path_leaves_nothing_to_climb() -> None:
    with mocked(
        lambda r: httpx.Response(403 if r.url.path == FORBIDDEN else 200), allowed="/"
    ) as c:
        result = run_one(by_id()["path.encoded_dots"], c)
    assert result.outcome is Outcome.NOT_APPLICABLE
    assert "no directory to climb out of" in result.reason


def overriding(plain: Answer, overridden: Answer) -> Answer:
    def answer(request: httpx.Request) -> httpx.Response:
        if any(h in request.headers for h in paths.OVERRIDE_HEADERS):
            return overridden(request)
        return plain(request)

    return answer


def ticking() -> Answer:
    count = itertools.count()
    return lambda r: httpx.Response(200, text=f"report q3, request {next(count)}")


@pytest.mark.parametrize(
    ("answer", "outcome", "reason"),
    [
        (
            overriding(lambda r: httpx.Response(200, text="q3"), lambda r: httpx.Response(204)),
            Outcome.FAIL,
            "the attack was accepted",
        ),
        (
            overriding(
                lambda r: httpx.Response(200, text="q3"),
                lambda r: httpx.Response(200, text="deleted"),
            ),
            Outcome.FAIL,
            "the attack was accepted",
        ),
        (lambda r: httpx.Response(200, text="q3"), Outcome.PASS, "dropped or ignored"),
        (
            overriding(lambda r: httpx.Response(200), lambda r: httpx.Response(400)),
            Outcome.PASS,
            "refused (400)",
        ),
        (ticking(), Outcome.INCONCLUSIVE, "whether the override took effect is unknown"),
        (
            overriding(ticking(), lambda r: httpx.Response(202)),
            Outcome.FAIL,
            "the attack was accepted",
        ),
        (
            overriding(
                lambda r: httpx.Response(200, json={"q3": 1, "at": time_ns()}),
                lambda r: httpx.Response(200, text="deleted"),
            ),
            Outcome.FAIL,
            "the attack was accepted",
        ),
        (lambda r: httpx.Response(404), Outcome.INCONCLUSIVE, "twin was not accepted"),
    ],
    ids=[
        "other-status",
        "other-body",
        "ignored",
        "refused",
        "volatile-text",
        "volatile-text-other-status",
        "json-then-text",
        "twin-refused",
    ],
)
def test_an_override_is_judged_against_two_plain_answers(
    answer: Answer, outcome: Outcome, reason: str
) -> None:
    with mocked(answer) as context:
        result = run_one(by_id()["method.override"], context)
    assert result.outcome is outcome
    assert reason in result.reason
