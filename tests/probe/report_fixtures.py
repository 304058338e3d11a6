"""Reports for the report writers' tests: real runs (the proof scenarios against
zerolane's own gateway, where every attack is refused, and against a target that
accepts anything, where every attack goes through) and one made by hand with every
outcome, a hostile response and a scenario the mapping does not know."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.probe.conftest import ALLOWED, FORBIDDEN
from zerolane.cli.probe_home import HomeSource
from zerolane.probe.context import ProbeContext
from zerolane.probe.model import Exchange, Outcome, Result, Scenario
from zerolane.probe.profile import TargetProfile
from zerolane.probe.report import Report
from zerolane.probe.runner import run
from zerolane.probe.scenarios import proof
from zerolane.probe.wire import Wire

#: what the accept-anything target answers: markup a report must show as text
HOSTILE = "<script>alert('probe')</script><img src=x onerror=alert(1)>"


class _AcceptAll(BaseHTTPRequestHandler):
    """Answers every request 200, whatever it carries (no authentication at all)."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = f'{{"ok": true, "note": "{HOSTILE}"}}'.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _answer

    def log_message(self, *_: object) -> None:
        return None


@pytest.fixture
def accept_all_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AcceptAll)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass(frozen=True)
class Run:
    """A real run's report and every secret the probe held during it."""

    report: Report
    secrets: frozenset[str]


def _secrets(context: ProbeContext) -> frozenset[str]:
    held = {context.credential().token, *context.wire.secrets}
    return frozenset(s for s in held if len(s) >= 16)


@pytest.fixture
def gateway_run(gateway_context: ProbeContext) -> Run:
    """The proof scenarios against zerolane's gateway: every attack refused."""
    report = run(proof.SCENARIOS, gateway_context)
    return Run(report, _secrets(gateway_context))


@pytest.fixture
def weak_run(home_source: HomeSource, accept_all_url: str) -> Iterator[Run]:
    """The proof scenarios against a target that accepts anything: every attack
    accepted (a fail each), with the home's real credentials and proofs."""
    context = ProbeContext(TargetProfile(accept_all_url, ALLOWED, FORBIDDEN), home_source, Wire())
    try:
        report = run(proof.SCENARIOS, context)
        yield Run(report, _secrets(context))
    finally:
        context.close()
        context.wire.close()


def _exchange(
    role: str, status: int | None, excerpt: str = "", error: str | None = None
) -> Exchange:
    return Exchange(
        role=role,
        method="GET",
        url='https://api.example.test/finance/reports/q3?x=<b>&y="quoted"',
        request_headers={"Authorization": "DPoP eyJ…(masked)", "X-Note": "<i>hi</i>"},
        request_body_bytes=0,
        status=status,
        response_headers={"content-type": "text/html"} if status else {},
        response_excerpt=excerpt,
        elapsed_ms=12.34,
        error=error,
    )


def _scenario(id_: str, title: str) -> Scenario:
    def never(_: ProbeContext) -> Result:
        raise AssertionError("a made-up report's scenarios are never run")

    return Scenario(
        id=id_,
        title=title,
        attack=f"The attack of {title} <with markup>.",
        expect="Refused.",
        surface="http",
        run=never,
    )


def made_report() -> Report:
    """One result of each outcome, a hostile response excerpt, a result with no
    answer, and a result of a scenario neither the report nor the mapping knows."""
    scenarios = (
        _scenario("proof.replayed", "Proof replayed"),
        _scenario("token.alg_none", "alg none <accepted>"),
        _scenario("token.expired", "Expired token"),
        _scenario("mcp.tool_outside_task", "MCP tool outside the task"),
    )
    results = (
        Result(
            "proof.replayed",
            Outcome.PASS,
            "refused (401)",
            (_exchange("twin", 200), _exchange("attack", 401)),
        ),
        Result(
            "token.alg_none",
            Outcome.FAIL,
            "the attack was accepted: GET … -> 200 <script>",
            (_exchange("twin", 200), _exchange("attack", 200, excerpt=HOSTILE)),
        ),
        Result(
            "token.expired",
            Outcome.INCONCLUSIVE,
            "the legitimate twin was not accepted (ConnectError)",
            (_exchange("twin", None, error="ConnectError: refused"),),
        ),
        Result(
            "mcp.tool_outside_task",
            Outcome.NOT_APPLICABLE,
            "the credentials or target do not offer: mcp",
        ),
        Result("custom.unmapped", Outcome.FAIL, "accepted", (_exchange("attack", 200),)),
    )
    return Report(
        target="https://user:hunter2-password@api.example.test/",
        credentials="static",
        started=1_765_000_000.0,
        finished=1_765_000_003.5,
        scenarios=scenarios,
        results=results,
    )
