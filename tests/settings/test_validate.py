"""What a configuration error says of the value it refused."""

from __future__ import annotations

import pytest

from zerolane.config import parse_config
from zerolane.errors import InvalidInput
from zerolane.settings.validate import MAX_SHOWN


def _refused(mode: str) -> str:
    with pytest.raises(InvalidInput) as caught:
        parse_config({"trust_domain": "example.org", "audit": {"mode": mode}})
    assert caught.value.reason == "config.audit_mode"
    return caught.value.message


def test_a_long_refused_value_is_not_echoed() -> None:
    """A secret pasted under the wrong key never reaches the terminal or a CI log: the
    error names its length; a short mistake is shown as written (the twin)."""
    secret = "sk_live_" + "x" * 40
    message = _refused(secret)
    assert secret not in message
    assert f"not a {len(secret)}-character value" in message
    assert "not 'later'" in _refused("later")
    assert "a" * MAX_SHOWN in _refused("a" * MAX_SHOWN)
