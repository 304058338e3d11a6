"""The probe's HTTP client: sends exactly what a scenario asks (raw paths, odd headers,
big bodies) and keeps a masked summary of each exchange as evidence."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Mapping

import httpx

from zerolane.audit.masking import mask_value
from zerolane.probe.model import Exchange

#: response characters kept in the evidence
EXCERPT_CHARS = 400
#: response bytes kept for the scenario to read
BODY_KEPT = 64 * 1024
#: request and response headers that carry credentials: masked whole
_SECRET_HEADERS = frozenset(
    {
        "authorization",
        "dpop",
        "cookie",
        "set-cookie",
        "proxy-authorization",
        "x-api-key",
        "mcp-session-id",
    }
)
#: response headers worth keeping (the rest are left out of the evidence); an MCP
#: session id is masked once the MCP client remembers it (``mcp_wire``)
_KEPT_RESPONSE_HEADERS = frozenset(
    {
        "content-type",
        "content-length",
        "www-authenticate",
        "location",
        "dpop-nonce",
        "mcp-session-id",
    }
)
#: what looks like a JWS/JWT anywhere in a text
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
_USER_AGENT = "zerolane-probe"


class Wire:
    """An ``httpx.Client`` that never follows redirects, never retries, and records.

    ``secrets`` are strings (tokens, proofs, client secrets) the probe holds: they are
    masked wherever they appear in the evidence, besides anything shaped like a JWT.
    """

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        verify: bool | str = True,
        client: httpx.Client | None = None,
    ) -> None:
        self._client = client or httpx.Client(
            timeout=timeout, verify=verify, follow_redirects=False, trust_env=False
        )
        self._timeout = timeout
        self._verify = verify
        self.secrets: set[str] = set()

    def elsewhere(self) -> Wire:
        """Another wire with the same settings and a client of its own (no connection,
        cookie or header of this one): a thief's client. It masks the same secrets (the
        set is shared); close it after use."""
        other = Wire(timeout=self._timeout, verify=self._verify)
        other.secrets = self.secrets
        return other

    def close(self) -> None:
        self._client.close()

    def remember(self, *secrets: str) -> None:
        self.secrets.update(s for s in secrets if s)

    def mask(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, mask_value(secret))
        return _JWT.sub(lambda m: mask_value(m.group(0)), text)

    def send(
        self,
        role: str,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        body: bytes | Iterable[bytes] = b"",
        raw_path: str | None = None,
        keep: int = BODY_KEPT,
    ) -> Exchange:
        """Send one request as given; ``raw_path`` (with its query) goes on the wire
        byte for byte, dot segments, backslashes and encodings untouched. A ``body``
        given as chunks is streamed as they come (with the caller's ``Content-Length``
        header, or chunked without one), never held whole; ``keep``: response bytes
        kept for the scenario to read."""
        pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
        if not any(name.lower() == "user-agent" for name, _ in pairs):
            pairs.append(("User-Agent", _USER_AGENT))
        target = httpx.URL(url)
        if raw_path is not None:
            target = target.copy_with(raw_path=raw_path.encode("ascii"))
        shown = url if raw_path is None else self._shown(url, raw_path)
        sent = [len(body)] if isinstance(body, bytes) else [0]
        content = body if isinstance(body, bytes) else _counted(body, sent)
        started = time.perf_counter()
        try:
            request = self._client.build_request(method, target, headers=pairs, content=content)
            response = self._client.send(request)
        except httpx.HTTPError as error:
            return Exchange(
                role,
                method,
                self.mask(shown),
                self._request_headers(pairs),
                sent[0],
                None,
                {},
                "",
                (time.perf_counter() - started) * 1000,
                error=f"{type(error).__name__}: {self.mask(str(error))[:200]}",
            )
        elapsed = (time.perf_counter() - started) * 1000
        return Exchange(
            role,
            method,
            self.mask(shown),
            self._request_headers(pairs),
            sent[0],
            response.status_code,
            {
                k.lower(): self.mask(v)
                for k, v in response.headers.items()
                if k.lower() in _KEPT_RESPONSE_HEADERS
            },
            # masked before it is cut: a token cut short matches neither its whole
            # self nor the JWT shape, and would show its header and claims
            self.mask(response.text[:BODY_KEPT])[:EXCERPT_CHARS] if response.content else "",
            elapsed,
            body=response.content[:keep],
        )

    @staticmethod
    def _shown(url: str, raw_path: str) -> str:
        parts = httpx.URL(url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.host}{port}{raw_path}"

    def _request_headers(self, pairs: list[tuple[str, str]]) -> dict[str, str]:
        shown: dict[str, str] = {}
        for name, value in pairs:
            key = name.lower()
            if key in _SECRET_HEADERS:
                scheme, _, rest = value.partition(" ")
                value = f"{scheme} {mask_value(rest)}" if rest else mask_value(value)
            elif len(value) > EXCERPT_CHARS:
                # masked before it is cut: a secret cut short is no longer recognised
                value = f"{self.mask(value)[:64]}... ({len(value)} chars)"
            else:
                value = self.mask(value)
            shown[key] = value
        return shown


def _counted(chunks: Iterable[bytes], sent: list[int]) -> Iterator[bytes]:
    """``chunks`` as they are sent, their bytes counted in ``sent[0]``."""
    for chunk in chunks:
        sent[0] += len(chunk)
        yield chunk
