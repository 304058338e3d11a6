"""The edge reads ``Authorization: Bearer`` without a client certificate only for a
token that says it is unbound; a key-bound one sent so stays ``auth.scheme``."""

from __future__ import annotations

import base64
import json

import pytest

from zerolane.errors import Unauthenticated
from zerolane.gateway.edge.http import token_of


def _token(claims: object) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJFUzI1NiJ9.{payload}.c2ln"


def test_an_unbound_token_is_read_as_bearer() -> None:
    token = _token({"bearer": True, "task": "t"})
    assert token_of(f"Bearer {token}", client_cert=None) == token
    assert token_of(f"DPoP {token}", client_cert=None) == token


@pytest.mark.parametrize(
    "token",
    [
        _token({"cnf": {"jkt": "x"}}),
        _token({"bearer": "true"}),
        _token(["bearer"]),
        "not-a-jws",
        "a.%%%.c",
        "a." + "A" * 20000 + ".c",
    ],
)
def test_anything_else_as_bearer_is_the_wrong_scheme(token: str) -> None:
    with pytest.raises(Unauthenticated) as refused:
        token_of(f"Bearer {token}", client_cert=None)
    assert refused.value.reason == "auth.scheme"
