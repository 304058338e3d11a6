"""The consent page of ``GET /oauth/authorize``: sign in, pick a playbook, say why.

Plain HTML, no script. Everything that comes from outside (the client's name, its
redirect URI, playbook names and descriptions, a typed intent) is HTML-escaped. The
page may not be framed (``X-Frame-Options: DENY``, ``frame-ancestors 'none'``), loads
nothing (``default-src 'none'``), and its form may go only here and, after the answer's
redirect, to the client's redirect URI or a sign-in service's authorization endpoint
(``form-action``).

With ``[[oauth.sign_in]]``, the page first offers "Sign in with <provider>" (a form of
its own, to ``/oauth/sign-in``) beside the password fields (or instead of them with no
``[oauth.local_user]``); once the provider has proved the person, the page names them
and asks only for the playbook and the intent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from urllib.parse import urlsplit

from starlette.responses import HTMLResponse

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem}"
    "label{display:block;margin-top:.8rem}input,select,textarea{width:100%;padding:.3rem}"
    ".error{color:#a00}.who{color:#555}button{margin-top:1rem;margin-right:.5rem}"
)


@dataclass(frozen=True, slots=True)
class PlaybookChoice:
    name: str
    description: str


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def headers(redirect_uri: str | None = None, also: Sequence[str] = ()) -> dict[str, str]:
    """The page's security headers; ``redirect_uri``: where its form's answer may go,
    ``also``: other origins its forms lead to (sign-in services)."""
    origins = ([_origin(redirect_uri)] if redirect_uri else []) + list(also)
    targets = " ".join(["'self'", *origins])
    return {
        "Content-Security-Policy": (
            "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
            f"frame-ancestors 'none'; form-action {targets}"
        ),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "Pragma": "no-cache",
    }


def _document(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )


def error_page(status: int, message: str) -> HTMLResponse:
    """A refusal shown to the person (never a redirect to an unchecked URI)."""
    body = (
        f"<p class=error role=alert>{escape(message)}</p><p>Go back to the app and try again.</p>"
    )
    return HTMLResponse(_document("Authorization refused", body), status, headers())


def consent_page(
    *,
    client_name: str,
    client_id: str,
    redirect_uri: str,
    resource: str,
    page_id: str,
    csrf: str,
    playbooks: list[PlaybookChoice],
    error: str | None = None,
    status: int = 200,
    intent: str = "",
    password: bool = True,
    providers: Sequence[tuple[str, str]] = (),
    provider_origins: Sequence[str] = (),
    signed_in: str | None = None,
) -> HTMLResponse:
    """The sign-in and consent form. ``password``: ask for the local user's password;
    ``providers``: (issuer, label) of the sign-in services offered; ``signed_in``: who
    a sign-in service proved (then no sign-in is asked for)."""
    options = "".join(
        f'<option value="{escape(pb.name)}">{escape(pb.name)} — {escape(pb.description)}</option>'
        for pb in playbooks
    )
    alert = f"<p class=error role=alert>{escape(error)}</p>" if error else ""
    body = (
        f"{alert}<p><strong>{escape(client_name)}</strong> "
        f"<span class=who>(client <code>{escape(client_id)}</code>)</span> asks to act for you "
        f"at <code>{escape(resource)}</code>, within a task you define here. It will be sent "
        f"back to <code>{escape(redirect_uri)}</code>.</p>"
    )
    hidden = (
        f'<input type=hidden name=page value="{escape(page_id)}">'
        f'<input type=hidden name=csrf value="{escape(csrf)}">'
    )
    if signed_in is None:
        body += "".join(
            f'<form method=post action="/oauth/sign-in">{hidden}'
            f'<input type=hidden name=issuer value="{escape(issuer)}">'
            f"<button type=submit>Sign in with {escape(label)}</button></form>"
            for issuer, label in providers
        )
    if signed_in is None and not password:
        body += (
            f'<form method=post action="/oauth/authorize">{hidden}'
            "<button type=submit name=decision value=deny>Deny</button></form>"
        )
        return HTMLResponse(
            _document("Authorize an MCP client", body),
            status,
            headers(redirect_uri, provider_origins),
        )
    if signed_in is not None:
        who = f"<p class=who>Signed in as <strong>{escape(signed_in)}</strong></p>"
    else:
        who = (
            "<label>Username <input name=username autocomplete=username required></label>"
            "<label>Password <input name=password type=password "
            "autocomplete=current-password required></label>"
        )
    body += (
        f'<form method=post action="/oauth/authorize">{hidden}{who}'
        f"<label>Playbook <select name=playbook required>{options}</select></label>"
        "<label>What is this task for? <textarea name=intent rows=3 maxlength=2000 required>"
        f"{escape(intent)}</textarea></label>"
        "<button type=submit name=decision value=allow>Allow</button>"
        "<button type=submit name=decision value=deny formnovalidate>Deny</button>"
        "</form>"
    )
    return HTMLResponse(
        _document("Authorize an MCP client", body),
        status,
        headers(redirect_uri, provider_origins if signed_in is None else ()),
    )
