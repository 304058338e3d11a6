"""Oversized heads and bodies: zerolane's gateway refuses them (431, 413) while the
allowed twin goes through; a target that reads anything it is sent is reported
``fail``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.probe.scenarios.lax_server import ALLOWED, TOKEN, Lax, lax_server
from tests.probe.scenarios.weak import ALL, FAILS, weak_context
from tests.probe.weak_target import Weakness
from zerolane.probe.context import ProbeContext
from zerolane.probe.credentials import StaticBearer
from zerolane.probe.model import Outcome, Result
from zerolane.probe.profile import Call, TargetProfile
from zerolane.probe.runner import run
from zerolane.probe.scenarios import limits
from zerolane.probe.wire import Wire


@contextmanager
def lax_target(lax: Lax) -> Iterator[ProbeContext]:
    with lax_server(lax) as url:
        profile = TargetProfile(url, Call("GET", ALLOWED))
        context = ProbeContext(profile, StaticBearer(TOKEN), Wire(timeout=10))
        try:
            yield context
        finally:
            context.wire.close()


def results(context: ProbeContext) -> dict[str, Result]:
    return {r.scenario: r for r in run(limits.SCENARIOS, context).results}


def refused(status: int | None, *expected: int) -> bool:
    """Refused with one of ``expected``, or the connection closed with no answer."""
    return status is None or status in expected


def test_the_gateway_refuses_oversized_heads_and_bodies(gateway_context: ProbeContext) -> None:
    found = results(gateway_context)
    assert {k: r.outcome for k, r in found.items()} == {
        "limits.oversized_headers": Outcome.PASS,
        "limits.oversized_body": Outcome.PASS,
    }
    twin, one, many = found["limits.oversized_headers"].evidence
    assert twin.status == 200
    assert refused(one.status, 431)
    assert refused(many.status, 431)
    assert len(one.request_headers["x-probe-padding"]) < 200  # summarized in the evidence
    assert len(many.request_headers) <= limits.SHOWN_HEADERS + 1
    twin, body = found["limits.oversized_body"].evidence
    assert twin.status == 200
    assert refused(body.status, 413)
    assert body.request_headers["content-length"] == str(limits.BODY)


def test_a_sound_server_refuses_them_too() -> None:
    with lax_target(Lax()) as context:
        found = results(context)
    assert {r.outcome for r in found.values()} == {Outcome.PASS}
    _, body = found["limits.oversized_body"].evidence
    assert refused(body.status, 413)


def test_a_server_reading_anything_fails_both() -> None:
    with lax_target(Lax(unbounded=True)) as context:
        found = results(context)
    assert {k: r.outcome for k, r in found.items()} == {
        "limits.oversized_headers": Outcome.FAIL,
        "limits.oversized_body": Outcome.FAIL,
    }
    _, body = found["limits.oversized_body"].evidence
    assert body.status == 200
    assert body.request_body_bytes == limits.BODY  # all of it went, streamed


def test_the_body_is_streamed_in_chunks() -> None:
    chunks = list(limits.filler(limits.CHUNK * 2 + 5))
    assert [len(c) for c in chunks] == [limits.CHUNK, limits.CHUNK, 5]
    assert list(limits.filler(0)) == []


@pytest.mark.parametrize("weakness", ALL, ids=str)
def test_against_the_weak_target_only_no_limits_fails(weakness: Weakness | None) -> None:
    with weak_context(weakness) as context:
        found = results(context)
    failed = {k for k, r in found.items() if r.outcome is Outcome.FAIL}
    assert failed == FAILS.get(weakness, frozenset()) & found.keys()
    if weakness is None:
        assert {r.outcome for r in found.values()} == {Outcome.PASS}
