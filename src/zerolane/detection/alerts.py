"""Alerts: a JSON body POSTed to ``[response.webhook] url``, signed with HMAC-SHA256.

The receiver checks ``X-Zerolane-Signature: sha256=<hex>``, the HMAC-SHA256 of the raw
body under the shared secret (compared in constant time: :func:`verify`), and may drop
an ``X-Zerolane-Alert-Id`` it has already seen (a delivery is retried until answered
2xx, so one alert can arrive twice). The secret comes from the environment variable
``secret_env`` names; it is never written to the config, a log or an event.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable, Mapping

from zerolane.errors import InvalidInput

SIGNATURE_HEADER = "X-Zerolane-Signature"
ALERT_ID_HEADER = "X-Zerolane-Alert-Id"

#: posts ``body`` with ``headers`` to ``url`` within ``timeout`` seconds, raising
#: :class:`DeliveryFailed` unless answered 2xx (:func:`zerolane.server.webhook.post`)
Poster = Callable[[str, bytes, Mapping[str, str], float], None]


class DeliveryFailed(Exception):
    """A delivery that was not answered 2xx; its message names why (never the URL,
    which may hold a token of the receiver's)."""


def signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str) -> bool:
    """Whether ``header`` is the signature of ``body`` under ``secret``."""
    return hmac.compare_digest(signature(secret, body), header)


def headers(secret: bytes, alert_id: str, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature(secret, body),
        ALERT_ID_HEADER: alert_id,
    }


def load_secret(env: str) -> bytes:
    """The secret in environment variable ``env``; refused (``config.response_secret``)
    when unset or empty: alerts are never sent unsigned."""
    value = os.environ.get(env, "")
    if not value:
        raise InvalidInput(
            "config.response_secret",
            f"[response] has alert rules but the environment variable {env} is unset or empty",
        )
    return value.encode()
