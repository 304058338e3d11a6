"""The decision contract (zerolane.decision): small, importable without the core."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from zerolane.decision import DecideInput, Decision, body_digest, request_digest
from zerolane.errors import Refusal


def test_a_request_to_decide_is_its_method_and_url_and_what_was_mapped() -> None:
    request = DecideInput("GET", "https://api.example/r", action="read")
    assert (request.resource, request.audience, request.mcp, request.client_cert) == (
        None,
        None,
        None,
        None,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.url = "https://elsewhere.example/"  # type: ignore[misc]


def test_an_allow_that_cannot_be_recorded_fails_closed() -> None:
    allow = Decision("d1", True, (), ("permit-read",), "t1", None, expires_at=10.0)
    denied = allow.failed_closed("audit.write")
    assert (denied.allowed, denied.reasons, denied.refusal) == (
        False,
        ("audit.write",),
        Refusal.UNAVAILABLE,
    )
    assert (denied.decision_id, denied.task_id, denied.expires_at) == ("d1", "t1", 10.0)
    assert allow.allowed  # the original is unchanged


def test_the_contract_imports_no_other_zerolane_module() -> None:
    code = (
        "import sys, zerolane.decision;"
        "print(sorted(m for m in sys.modules if m.startswith('zerolane')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "['zerolane', 'zerolane.decision', 'zerolane.errors']"


def test_a_request_digest_binds_method_target_and_body() -> None:
    """What an HTTP approval binds: each part changes the digest; the method's case
    does not."""
    body = body_digest(b'{"amount": 5}')
    base = request_digest("POST", "/finance/upload?to=alice", body)
    assert request_digest("post", "/finance/upload?to=alice", body) == base
    for other in (
        request_digest("PUT", "/finance/upload?to=alice", body),
        request_digest("POST", "/finance/upload?to=mallory", body),
        request_digest("POST", "/finance/upload", body),
        request_digest("POST", "/finance/upload?to=alice", body_digest(b'{"amount": 6}')),
    ):
        assert other != base
