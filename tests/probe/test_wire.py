"""The probe's wire: what it keeps of a request's headers never shows a secret, in any
form a target may show it in, and no report of a run against a target that echoes
every credential in every shape holds one."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote, quote_plus, unquote, unquote_plus

import httpx
import pytest
from rich.console import Console

from tests.probe.weak_target import AUDIENCE, OTHER_AUDIENCE, WeakTarget
from zerolane.audit.masking import mask_value
from zerolane.cli import probe as probe_cli
from zerolane.probe import html, report_json, sarif
from zerolane.probe.context import ProbeContext
from zerolane.probe.credentials import StaticBearer
from zerolane.probe.model import Outcome
from zerolane.probe.oauth import ClientCredentials, ClientSecret
from zerolane.probe.profile import Call, TargetProfile
from zerolane.probe.runner import run
from zerolane.probe.scenarios import by_id, proof, tokens
from zerolane.probe.wire import Wire, secret_parameters

SECRET = "s3cr3t-" + "x" * 90  # longer than the 64 characters a long header keeps


def _wire() -> Wire:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(204)

    wire = Wire(client=httpx.Client(transport=httpx.MockTransport(answer)))
    wire.remember(SECRET)
    return wire


def test_a_long_header_is_masked_before_it_is_cut() -> None:
    """A secret at the start of a long header of no secret-looking name: cut first, it
    would no longer match itself and show its first 64 characters."""
    wire = _wire()
    try:
        sent = wire.send(
            "attack", "GET", "http://target/x", headers={"X-Upstream": SECRET + "a" * 500}
        )
    finally:
        wire.close()
    shown = sent.request_headers["x-upstream"]
    assert SECRET[:20] not in shown
    assert shown.startswith(mask_value(SECRET))
    assert shown.endswith(f"... ({len(SECRET) + 500} chars)")


def test_a_long_header_without_a_secret_keeps_its_start() -> None:
    wire = _wire()
    try:
        sent = wire.send("attack", "GET", "http://target/x", headers={"X-Padding": "a" * 1000})
    finally:
        wire.close()
    assert sent.request_headers["x-padding"] == "a" * 64 + "... (1000 chars)"


# masking: every form of a secret, and credentials in URL queries

#: a secret that is no JWT (nothing but its forms can mask it), with characters
#: percent-encoding and base64 alphabets treat differently
TOKEN = "cl1ent+secret/with spaces&more=chars~" + "q" * 7


@pytest.mark.parametrize(
    "shown",
    [
        pytest.param(TOKEN, id="raw"),
        pytest.param(quote(TOKEN, safe=""), id="quote"),
        pytest.param(quote(TOKEN), id="quote-path"),
        pytest.param(quote_plus(TOKEN), id="quote_plus"),
        pytest.param(base64.b64encode(TOKEN.encode()).decode(), id="b64"),
        pytest.param(base64.b64encode(TOKEN.encode()).decode().rstrip("="), id="b64-unpadded"),
        pytest.param(base64.urlsafe_b64encode(TOKEN.encode()).decode(), id="b64url"),
        pytest.param(
            base64.urlsafe_b64encode(TOKEN.encode()).decode().rstrip("="), id="b64url-unpadded"
        ),
        # inside a longer base64 text, at each of the three alignments
        pytest.param(base64.b64encode(b"DPoP " + TOKEN.encode()).decode(), id="inside-2"),
        pytest.param(base64.b64encode(b"DPoP  " + TOKEN.encode() + b"!").decode(), id="inside-0"),
        pytest.param(base64.urlsafe_b64encode(b"Bearer " + TOKEN.encode()).decode(), id="inside-1"),
    ],
)
def test_a_secret_is_masked_in_every_form(shown: str) -> None:
    wire = _wire()
    wire.remember(TOKEN)
    masked = wire.mask(f"before {shown} after")
    assert masked.startswith("before ")
    assert masked.endswith(" after")
    assert mask_value(TOKEN) in masked
    assert not _holds(masked, [TOKEN])
    wire.close()


def test_a_short_secret_is_masked_raw_only() -> None:
    wire = _wire()
    wire.remember("abc")
    assert wire.mask("xabcx YWJj") == f"x{mask_value('abc')}x YWJj"
    wire.close()


def test_remembering_again_changes_nothing() -> None:
    wire = _wire()
    wire.remember(SECRET, SECRET, "")
    before = wire.mask(SECRET)
    wire.remember(SECRET)
    assert wire.mask(SECRET) == before == mask_value(SECRET)
    other = wire.elsewhere()
    assert other.mask(base64.b64encode(SECRET.encode()).decode()) == mask_value(SECRET)
    other.close()
    wire.close()


def test_credentials_in_a_url_query_are_masked_whoever_minted_them() -> None:
    wire = _wire()
    url = "https://t.example/cb?state=ok&access_token=minted-1&x=1;code=c0de&API_KEY=k3y#f"
    masked = wire.mask(url)
    assert "minted-1" not in masked
    assert "c0de" not in masked
    assert "k3y" not in masked
    assert masked.startswith("https://t.example/cb?state=ok&access_token=***(sha256:")
    assert "&x=1;" in masked
    assert masked.endswith("#f")
    assert wire.mask(masked) == masked  # a mask is never masked again
    assert secret_parameters(url) == ["minted-1", "k3y"]  # ';' separates no parameter
    assert secret_parameters("https://t.example/x?q=1") == []
    wire.close()


def _holds(text: str, secrets: Iterable[str]) -> list[str]:
    """The secrets ``text`` shows, raw, percent-decoded or base64-decoded (standard or
    URL-safe, any alignment, inside any base64-looking run): an independent reader."""
    candidates = [text, unquote(text), unquote_plus(text)]
    for found in re.findall(r"[A-Za-z0-9+/_-]{12,}", text):
        for start in range(4):
            chunk = found[start:]
            chunk = chunk[: len(chunk) - len(chunk) % 4]
            for alphabet in (chunk, chunk.replace("-", "+").replace("_", "/")):
                try:
                    candidates.append(base64.b64decode(alphabet).decode("latin-1"))
                except ValueError:
                    continue
    return [s for s in secrets if len(s) >= 8 and any(s in c for c in candidates)]


def test_no_report_shows_a_credential_the_target_echoed_in_any_form(tmp_path: Path) -> None:
    """A target that shows the request's credentials in every shape (raw, percent-
    encoded, base64 of the token, of the whole Authorization header, of the client's
    id:secret) and a Location with credentials of its own: the JSON, SARIF, HTML and
    terminal reports hold none of them in any form."""
    with WeakTarget(leaks=True) as target:
        source = ClientCredentials(
            target.token_url,
            client=ClientSecret(target.client_id, target.client_secret, "client_secret_basic"),
            scope="read",
            resource=AUDIENCE,
            other_audience=OTHER_AUDIENCE,
            jwks_uri=target.jwks_url,
        )
        context = ProbeContext(target.profile(), source, Wire())
        try:
            report = run([*proof.SCENARIOS, *tokens.SCENARIOS], context)
        finally:
            context.close()
            context.wire.close()
    held = {*context.wire.secrets, *target.planted, target.client_secret}
    assert len(held) > 10
    twin = report.results[0].evidence[0]
    assert twin.status == 200
    # what was planted was seen, and masked
    assert '"raw": "***(sha256:' in twin.response_excerpt
    assert '"basic": "***(sha256:' in twin.response_excerpt
    assert "&access_token=***(sha256:" in twin.response_headers["location"]
    assert [r.outcome for r in report.results].count(Outcome.PASS) > 5  # twins went through
    console = Console(record=True, width=400)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(probe_cli, "console", console)
        probe_cli._print_report(report)
    outputs = {
        "json": report_json.dumps(report),
        "sarif": json.dumps(sarif.to_sarif(report)),
        "html": html.render(report),
        "terminal": console.export_text(),
    }
    for name, text in outputs.items():
        assert _holds(text, held) == [], name


def test_a_credential_in_the_target_url_is_masked_in_the_report() -> None:
    """``--target https://api/?access_token=...``: the report's target and every
    exchange show the value masked, in any form."""
    url = "http://127.0.0.1:9/?access_token=a-credential-in-the-url"
    profile = TargetProfile(url, Call("GET", "/x"))
    context = ProbeContext(profile, StaticBearer("a-static-bearer-token"), Wire(timeout=1))
    try:
        report = run([by_id()["token.no_proof"]], context)
    finally:
        context.close()
        context.wire.close()
    assert (
        report.target == f"http://127.0.0.1:9/?access_token={mask_value('a-credential-in-the-url')}"
    )
    assert "a-credential-in-the-url" not in report_json.dumps(report)
    assert "a-credential-in-the-url" in context.wire.secrets
