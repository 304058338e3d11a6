"""What a host name says: whether it is this machine (loopback).

One rule for every place that lets plain ``http`` through only to loopback (a JWKS
URL, an authorization server's endpoint, an OAuth client's redirect URI, RFC 8252).
"""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (``127.0.0.0/8``, ``::1``); a name that
    merely resolves to one is not (DNS is not asked)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
