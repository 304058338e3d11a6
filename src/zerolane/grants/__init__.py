"""Downstream credentials minted or looked up for a task and injected by the gateway.

The agent never holds them: the gateway adds the header after an allow decision.
"""

from zerolane.grants.base import CredentialSource, read_private_file
from zerolane.grants.hmac_keys import HmacKeys, mint_api_key, verify_api_key
from zerolane.grants.static import StaticSecret

__all__ = [
    "CredentialSource",
    "HmacKeys",
    "StaticSecret",
    "mint_api_key",
    "read_private_file",
    "verify_api_key",
]
