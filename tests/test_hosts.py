"""The one loopback rule: plain http is let through only to this machine."""

from __future__ import annotations

import pytest

from zerolane.hosts import is_loopback


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.8.9.10", "::1"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host",
    [
        "",
        "example.org",
        "localhost.example.org",
        "10.0.0.1",
        "0.0.0.0",  # noqa: S104 - a value compared, never bound
        "::",
        "127.0.0.1.nip.io",
    ],
)
def test_other_hosts_are_not(host: str) -> None:
    """A name that resolves to loopback is not taken as one: DNS is not asked."""
    assert not is_loopback(host)
