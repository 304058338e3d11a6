"""The alert webhook's HTTP client (:data:`zerolane.detection.alerts.Poster`): aiohttp,
on an event loop of its own, in the responder's thread; no redirects followed."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp

from zerolane.detection.alerts import DeliveryFailed


async def _post(url: str, body: bytes, sent: Mapping[str, str], seconds: float) -> None:
    client_timeout = aiohttp.ClientTimeout(total=seconds)
    try:
        async with (
            aiohttp.ClientSession(timeout=client_timeout) as session,
            session.post(url, data=body, headers=dict(sent), allow_redirects=False) as response,
        ):
            if not 200 <= response.status < 300:
                raise DeliveryFailed(f"http {response.status}")
    except (aiohttp.ClientError, TimeoutError, OSError) as err:
        raise DeliveryFailed(type(err).__name__) from None


def post(url: str, body: bytes, sent: Mapping[str, str], timeout: float) -> None:
    """POST ``body``; raises :class:`DeliveryFailed` unless answered 2xx in time."""
    asyncio.run(_post(url, body, sent, timeout))
