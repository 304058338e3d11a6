"""The probe's HTTP client: sends exactly what a scenario asks (raw paths, odd headers,
big bodies) and keeps a masked summary of each exchange as evidence.

Masking: every credential the probe holds (:meth:`Wire.remember`) is replaced by its
fingerprint wherever it appears, in the forms a target may show it in besides the raw
one (:func:`forms`): percent-encoded (``quote``, ``quote_plus``), and base64, standard
and URL-safe, padded or not, including where it sits inside a longer base64 text (an
echoed ``Authorization`` header encoded whole: the three alignments a string can have
in base64). Besides, anything shaped like a JWT, and the value of any URL query
parameter named like a credential (``?access_token=``, ``&client_secret=``, ...,
:data:`SECRET_PARAMETERS`), are masked whoever minted them.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from urllib.parse import parse_qsl, quote, quote_plus, urlsplit

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
#: URL query parameters whose value is a credential (OAuth's, API keys', signed URLs')
SECRET_PARAMETERS = (
    "access_token",
    "id_token",
    "refresh_token",
    "token",
    "code",
    "client_secret",
    "api_key",
    "apikey",
    "key",
    "secret",
    "password",
    "passwd",
    "pwd",
    "sig",
    "signature",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "auth",
    "session",
    "assertion",
    "client_assertion",
    "subject_token",
    "dpop",
)
_SECRET_QUERY = re.compile(
    r"(?i)([?&;](?:" + "|".join(re.escape(name) for name in SECRET_PARAMETERS) + r")=)"
    r"(?!\*\*\*\()([^&#;\s\"'<>]+)"
)
#: a secret shorter than this is masked raw only: its encoded forms would be so short
#: they would match by chance
MIN_ENCODED = 8
_USER_AGENT = "zerolane-probe"


def secret_parameters(url: str) -> list[str]:
    """The values of ``url``'s query parameters named like a credential."""
    return [
        value
        for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=False)
        if name.lower() in SECRET_PARAMETERS
    ]


def _base64_cores(raw: bytes) -> set[str]:
    """The characters base64 writes for ``raw`` whatever precedes it: for each of the
    three offsets ``raw`` can start at (modulo 3 bytes), the encoding's characters
    that depend on ``raw``'s bytes alone (standard and URL-safe alphabets)."""
    cores: set[str] = set()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).decode("ascii").rstrip("=")
        start = -(-8 * shift // 6)  # the first character free of the padding bytes
        end = 8 * (shift + len(raw)) // 6  # past the last one made of raw's bits only
        core = encoded[start:end]
        cores.update({core, core.translate(_URLSAFE)})
    return cores


_URLSAFE = str.maketrans("+/", "-_")


def forms(secret: str) -> set[str]:
    """``secret`` as a target may show it: raw, percent-encoded, and base64 (standard
    and URL-safe, padded or not, alone or inside a longer base64 text)."""
    shown = {secret}
    if len(secret) < MIN_ENCODED:
        return shown
    raw = secret.encode()
    shown.update({quote(secret, safe=""), quote(secret), quote_plus(secret)})
    whole = base64.b64encode(raw).decode("ascii")
    shown.update({whole, whole.translate(_URLSAFE)})
    shown.update(_base64_cores(raw))
    return shown


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
        #: every form of every secret, longest first, with what it is replaced by
        self._masks: list[tuple[str, str]] = []

    def elsewhere(self) -> Wire:
        """Another wire with the same settings and a client of its own (no connection,
        cookie or header of this one): a thief's client. It masks the same secrets (the
        set and their forms are shared); close it after use."""
        other = Wire(timeout=self._timeout, verify=self._verify)
        other.secrets = self.secrets
        other._masks = self._masks
        return other

    def close(self) -> None:
        self._client.close()

    def remember(self, *secrets: str) -> None:
        """Mask ``secrets`` (in every form :func:`forms` gives) from now on."""
        new = [s for s in secrets if s and s not in self.secrets]
        if not new:
            return
        self.secrets.update(new)
        known = {form for form, _ in self._masks}
        for secret in new:
            shown = mask_value(secret)
            self._masks.extend((form, shown) for form in forms(secret) - known)
            known |= forms(secret)
        self._masks.sort(key=lambda pair: len(pair[0]), reverse=True)

    def mask(self, text: str) -> str:
        for form, shown in self._masks:
            if form in text:
                text = text.replace(form, shown)
        text = _SECRET_QUERY.sub(lambda m: m.group(1) + mask_value(m.group(2)), text)
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
