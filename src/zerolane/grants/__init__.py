"""Downstream credentials minted or looked up for a task.

Header credentials (static secrets, per-request HMAC keys) are injected by the gateway
after an allow decision: the agent never holds them. Grant brokers mint a credential
per task under a lease (a PostgreSQL role, a task-long API key) that is revoked when
the task ends (:mod:`zerolane.grants.leases`, ``docs/grants.md``). The PostgreSQL
broker (:mod:`zerolane.grants.postgres_role`) is imported on its own: it needs psycopg.
"""

from zerolane.grants.base import CredentialSource, read_private_file
from zerolane.grants.broker import GrantBroker, GrantSecret, GrantTemplate, parse_template
from zerolane.grants.hmac_keys import HmacKeyBroker, HmacKeys, mint_api_key, verify_api_key
from zerolane.grants.leases import IssuedGrant, LeaseManager
from zerolane.grants.static import StaticSecret, StaticSecretBroker

__all__ = [
    "CredentialSource",
    "GrantBroker",
    "GrantSecret",
    "GrantTemplate",
    "HmacKeyBroker",
    "HmacKeys",
    "IssuedGrant",
    "LeaseManager",
    "StaticSecret",
    "StaticSecretBroker",
    "mint_api_key",
    "parse_template",
    "read_private_file",
    "verify_api_key",
]
