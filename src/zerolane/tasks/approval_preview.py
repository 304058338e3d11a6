"""What an approver is shown of the request they approve: a masked preview.

An approval binds its request by digest (:mod:`zerolane.tasks.approvals`); a digest
tells a person nothing. So the approval also keeps a *preview*, built when it is asked
for and never from anything unmasked:

- HTTP (:func:`http_preview`): the method, the path, the query with each value masked
  whose name looks secret or which looks like a credential, the body's size and type,
  and for a JSON (or form) body a short excerpt of it, masked the same way before it is
  cut;
- a tool call (:func:`call_preview`: an MCP ``tools/call``, a guarded function): the
  tool's or function's name and its arguments, masked;
- otherwise (a remote enforcement point, forward-auth): the method and the path.

Masking is :func:`zerolane.audit.masking.mask` (secret-looking member names, JWTs, PEM
private keys, zerolane's own credentials), applied again to the whole preview when it
is stored (:func:`stored_preview`), whoever built it. A preview also masks what a
request carries secrets in beyond the audit's names (:func:`scrub`): a member or
parameter named ``key``, ``sig``, ``code``, ``pass``, ``pwd``, ``auth``, ``otp``,
``pin`` or holding ``signature``, ``passw``, ``session`` or ``access_key`` (an S3
presigned URL's ``X-Amz-Signature``, an OAuth ``code``), a string that is an
``Authorization`` value (``Bearer ...``, ``Basic ...``), and such parameters inside a
URL a string holds (``https://h/?api_key=...``). The stored text is at most
:data:`MAX_PREVIEW` characters: what does not fit is cut and marked ``truncated``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from zerolane.audit.masking import mask, mask_value

#: the longest stored preview (JSON text)
MAX_PREVIEW = 4096
#: the longest excerpt of a body, of its masked JSON
MAX_EXCERPT = 512
#: query or form parameters kept at most
MAX_PARAMS = 32
#: the longest value of a kept parameter
MAX_VALUE = 200


#: names a preview masks besides the audit's (:func:`zerolane.audit.masking.mask`): whole
#: names, and what a name may hold anywhere
_SECRET_NAME = re.compile(
    r"^(key|sig|code|pass|pwd|auth|otp|pin|sid)$|signature|passw|session|access[_-]?key",
    re.IGNORECASE,
)
#: a string that is an Authorization header's value
_AUTHORIZATION = re.compile(r"^\s*(bearer|basic|dpop|digest|token)\s+\S", re.IGNORECASE)
#: a ``name=value`` parameter of a URL or query held in a string
_PARAM = re.compile(r"([?&;])([^=&;#\s]+)=([^&;#\s]*)")


def _secret_name(name: str) -> bool:
    """Whether a member or parameter called ``name`` holds a secret (the audit's names
    or :data:`_SECRET_NAME`)."""
    return _SECRET_NAME.search(name) is not None or mask("", name) != ""


def _scrub_text(text: str) -> str:
    """``text`` masked whole when it is an Authorization value, else with the values of
    its secret-named URL parameters masked."""
    if _AUTHORIZATION.match(text):
        return mask_value(text)
    if "=" not in text:
        return text

    def masked(found: re.Match[str]) -> str:
        sep, name, value = found.groups()
        return f"{sep}{name}={mask_value(value)}" if value and _secret_name(name) else found[0]

    return _PARAM.sub(masked, text)


def scrub(value: object) -> object:
    """A copy of ``value`` (JSON data) with what :func:`zerolane.audit.masking.mask`
    leaves but a preview must not show masked (see the module doc)."""
    if isinstance(value, str):
        return _scrub_text(value)
    if isinstance(value, Mapping):
        return {
            str(k): mask_value(v if isinstance(v, str) else json.dumps(v, default=str))
            if _secret_name(str(k)) and v not in (None, "")
            else scrub(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


def _pairs(text: str) -> list[list[str]]:
    """``name=value`` pairs of a query or form body, each value masked by its name or
    its shape, cut to :data:`MAX_VALUE`."""
    pairs = parse_qsl(text, keep_blank_values=True)[:MAX_PARAMS]
    return [
        [
            name[:MAX_VALUE],
            (mask_value(value) if value and _secret_name(name) else str(scrub(mask(value))))[
                :MAX_VALUE
            ],
        ]
        for name, value in pairs
    ]


def _excerpt(value: object) -> str:
    shown = mask(scrub(value))
    text = json.dumps(shown, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= MAX_EXCERPT else text[:MAX_EXCERPT] + "..."


def http_preview(
    method: str, path: str, query: str, body: bytes | None, content_type: str = ""
) -> dict[str, Any]:
    """The preview of an HTTP request (see the module doc); ``body`` None: a body the
    gateway did not read (streamed, never approvable)."""
    preview: dict[str, Any] = {"method": method.upper(), "path": path[:1024]}
    if query:
        preview["query"] = _pairs(query)
    if body is None:
        return preview
    kind = content_type.split(";", 1)[0].strip().lower()
    preview["body"] = body_preview(body, kind)
    return preview


def body_preview(body: bytes, kind: str) -> dict[str, Any]:
    """Size, type and (JSON or form) masked excerpt of ``body``."""
    shown: dict[str, Any] = {"size": len(body)}
    if kind:
        shown["type"] = kind[:100]
    if not body:
        return shown
    if kind == "application/json" or kind.endswith("+json"):
        try:
            shown["excerpt"] = _excerpt(json.loads(body))
        except ValueError:  # not JSON after all (or not UTF-8): its size only
            shown["excerpt"] = None
    elif kind == "application/x-www-form-urlencoded":
        try:
            shown["form"] = _pairs(body.decode("utf-8"))
        except UnicodeDecodeError:
            shown["form"] = None
    return shown


def call_preview(kind: str, name: str, arguments: object) -> dict[str, Any]:
    """The preview of a tool call (``kind``: ``tool`` for MCP, ``function`` for a
    guarded Python function) and its arguments, masked."""
    return {kind: name[:256], "arguments": _excerpt(arguments)}


def url_preview(method: str, url: str) -> dict[str, Any]:
    """The least an approver is shown: the method, the path and the masked query."""
    parts = urlsplit(url)
    return http_preview(method, parts.path or "/", parts.query, None)


def stored_preview(preview: Mapping[str, Any]) -> str:
    """``preview`` masked (again) as stored: JSON text of at most :data:`MAX_PREVIEW`
    characters (cut with ``truncated`` set when longer)."""
    masked = mask(scrub(dict(preview)))
    text = json.dumps(masked, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if len(text) <= MAX_PREVIEW:
        return text
    keep = MAX_PREVIEW - 64
    while True:  # the excerpt's escapes (quotes, backslashes) grow it: cut until it fits
        cut = json.dumps(
            {"truncated": True, "excerpt": text[:keep]}, separators=(",", ":"), ensure_ascii=False
        )
        if len(cut) <= MAX_PREVIEW:
            return cut
        keep -= max(1, len(cut) - MAX_PREVIEW)


def shown_preview(text: str | None) -> dict[str, Any] | None:
    """A stored preview as an object (None: none was stored, or it is unreadable)."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
