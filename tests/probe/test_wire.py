"""The probe's wire: what it keeps of a request's headers never shows a secret."""

from __future__ import annotations

import httpx

from zerolane.audit.masking import mask_value
from zerolane.probe.wire import Wire

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
