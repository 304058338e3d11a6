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
is stored (:func:`stored_preview`), whoever built it. The stored text is at most
:data:`MAX_PREVIEW` characters: what does not fit is cut and marked ``truncated``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from zerolane.audit.masking import mask

#: the longest stored preview (JSON text)
MAX_PREVIEW = 4096
#: the longest excerpt of a body, of its masked JSON
MAX_EXCERPT = 512
#: query or form parameters kept at most
MAX_PARAMS = 32
#: the longest value of a kept parameter
MAX_VALUE = 200


def _pairs(text: str) -> list[list[str]]:
    """``name=value`` pairs of a query or form body, each value masked by its name or
    its shape, cut to :data:`MAX_VALUE`."""
    pairs = parse_qsl(text, keep_blank_values=True)[:MAX_PARAMS]
    return [[name[:MAX_VALUE], str(mask(value, name))[:MAX_VALUE]] for name, value in pairs]


def _excerpt(value: object) -> str:
    text = json.dumps(mask(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
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
    masked = mask(dict(preview))
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
