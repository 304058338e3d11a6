"""The OAuth endpoints of standard MCP clients (``[oauth] enabled``; see
:mod:`zerolane.server.oauth_server` for the flow and ``docs/mcp-gateway.md``).

``GET /.well-known/oauth-authorization-server`` (RFC 8414), ``POST /oauth/register``
(RFC 7591), ``GET``/``POST /oauth/authorize`` (the sign-in and consent page, which
answers with a redirect carrying a code), ``POST /oauth/token`` (RFC 6749 section 5:
the token, or an error object with ``error`` and ``error_description``, never cached);
with ``[[oauth.sign_in]]``, ``POST /oauth/sign-in`` (from the page: off to an OpenID
provider) and ``GET /oauth/callback`` (back from it: the page again, for the person it
proved; :mod:`zerolane.server.oauth_sign_in`). A sign-in from a locked username or
address (:mod:`zerolane.server.oauth_throttle`) is answered 429 with ``Retry-After``.
Every refusal of ``/oauth/token`` is audited, at the refusals' bounded rate
(``token.refused``, :mod:`zerolane.server.token_refusals`).
"""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from zerolane.errors import ZerolaneError
from zerolane.gateway.edge.http import proof_of, refusal
from zerolane.server.oauth_clients import RegistrationError, registration_json
from zerolane.server.oauth_page import consent_page, error_page
from zerolane.server.oauth_page import headers as page_headers
from zerolane.server.oauth_server import AuthorizeRefused, OAuthError, OAuthServer
from zerolane.server.oauth_sign_in import OidcSignIn, SignInRefused
from zerolane.server.oauth_state import Authorization, Client, digest
from zerolane.server.oauth_throttle import REASON as THROTTLED
from zerolane.server.token_refusals import token_refused

router = APIRouter()
log = logging.getLogger(__name__)
FORM = "application/x-www-form-urlencoded"
CSRF_COOKIE = "zl_oauth_csrf"
#: the CSRF cookie goes to the page and the sign-in start (SameSite strict)
COOKIE_PATH = "/oauth"
#: the same token for the provider's callback, which a cross-site redirect reaches
#: (SameSite lax: sent on that top-level GET; the ``state`` is bound to it)
SIGN_IN_COOKIE = "zl_oauth_sign_in"
CALLBACK_PATH = "/oauth/callback"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_MAX_FORM = 64 * 1024


def _server(request: Request) -> OAuthServer:
    server: OAuthServer = request.app.state.oauth
    return server


def _oauth_error(err: OAuthError) -> Response:
    answer = refusal(
        err.status,
        err.reason,
        err.description,
        error=err.error,
        extra={"error_description": err.description},
    )
    response = answer.response()
    response.headers["Pragma"] = "no-cache"
    return response


async def _form(request: Request) -> dict[str, list[str]]:
    """The request's urlencoded form; :class:`ValueError` for another body."""
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media != FORM:
        raise ValueError(f"send the body as {FORM}")
    body = await request.body()
    if len(body) > _MAX_FORM:
        raise ValueError("the form is too large")
    try:
        return parse_qs(body.decode("ascii"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise ValueError("the form is not urlencoded ASCII") from None


@router.get("/.well-known/oauth-authorization-server", tags=["oauth"])
def metadata(request: Request) -> JSONResponse:
    """RFC 8414 authorization server metadata, for standard MCP clients."""
    return JSONResponse(
        _server(request).metadata(), headers={"Cache-Control": "public, max-age=3600"}
    )


@router.post("/oauth/register", status_code=201, tags=["oauth"])
async def register(request: Request) -> Response:
    """RFC 7591 dynamic registration of a public client (``token_endpoint_auth_method``
    none); 400 ``invalid_redirect_uri`` / ``invalid_client_metadata`` otherwise."""
    try:
        body: Any = json.loads(await request.body())
    except (ValueError, RecursionError):
        body = None
    try:
        client = await run_in_threadpool(_server(request).register, body)
    except RegistrationError as err:
        return JSONResponse(
            {"error": err.error, "error_description": err.description}, 400, headers=_NO_STORE
        )
    return JSONResponse(registration_json(client), 201, headers=_NO_STORE)


@router.get("/oauth/authorize", tags=["oauth"])
def authorize(request: Request) -> Response:
    """The sign-in and consent page for an authorization request (HTML)."""
    server = _server(request)
    params = parse_qs(request.url.query, keep_blank_values=True)
    csrf = secrets.token_urlsafe(32)
    try:
        client, authorization = server.authorization(params, csrf, request.scope)
    except AuthorizeRefused as err:
        if err.redirect is None:
            return error_page(400, err.message)
        return RedirectResponse(err.redirect, 303, headers=page_headers())
    choices = server.playbooks_for(client)
    if not choices:
        return error_page(403, "no playbook lets this app open a task: ask an administrator")
    page_id = server.state.add_page(authorization)
    page = _page(server, client, authorization, page_id, csrf)
    page.set_cookie(
        CSRF_COOKIE,
        csrf,
        max_age=600,
        path=COOKIE_PATH,
        secure=server.issuer.startswith("https://"),
        httponly=True,
        samesite="strict",
    )
    return page


def _page(
    server: OAuthServer,
    client: Client,
    authorization: Authorization,
    page_id: str,
    csrf: str,
    *,
    error: str | None = None,
    status: int = 200,
    intent: str = "",
) -> Response:
    """The consent page as it stands: for the person signed in on it, if any."""
    user = server.state.page_user(page_id)
    sign_in = server.sign_in
    return consent_page(
        client_name=client.client_name or "An MCP client",
        client_id=client.client_id,
        redirect_uri=authorization.redirect_uri,
        resource=authorization.resource,
        page_id=page_id,
        csrf=csrf,
        playbooks=server.playbooks_for(client),
        error=error,
        status=status,
        intent=intent,
        password=server.local_user is not None,
        providers=[(p.issuer, p.label) for p in sign_in.providers] if sign_in else (),
        provider_origins=sign_in.origins if sign_in else (),
        signed_in=f"{user.subject} ({user.issuer_name})" if user else None,
    )


def _address(request: Request) -> str:
    """The client's address: the TCP peer's (no header is read for it)."""
    return request.client.host if request.client else "unknown"


def _throttled(wait: int) -> str:
    return f"too many failed sign-ins ({THROTTLED}): try again in {wait} s"


def _one(form: dict[str, list[str]], name: str) -> str:
    values = form.get(name, [])
    return values[0] if len(values) == 1 else ""


def _csrf_ok(csrf: str, expected: str, cookie: str) -> bool:
    """``csrf`` is the page's token (``expected``: its digest) and the cookie's."""
    return bool(
        csrf
        and secrets.compare_digest(digest(csrf).encode(), expected.encode())
        and secrets.compare_digest(cookie.encode(), csrf.encode())
    )


@router.post("/oauth/sign-in", tags=["oauth"], response_model=None)
async def sign_in(request: Request) -> Response:
    """From the consent page: off to the chosen OpenID provider to sign in."""
    server = _server(request)
    if server.sign_in is None:
        return error_page(404, "no sign-in service is configured here")
    try:
        form = await _form(request)
    except ValueError as err:
        return error_page(400, str(err))
    page_id = _one(form, "page")
    authorization = server.state.page(page_id, request.app.state.deployment.clock.now())
    if authorization is None:
        return error_page(400, "this sign-in page expired or was used: start again from the app")
    csrf = _one(form, "csrf")
    if not _csrf_ok(csrf, authorization.csrf, request.cookies.get(CSRF_COOKIE, "")):
        return error_page(403, "the form did not come from this page: start again from the app")
    clock = request.app.state.deployment.clock
    wait = server.throttle.retry_after(None, _address(request), clock.now())
    if wait:
        server.sign_in_refused(request.scope, authorization.client_id, THROTTLED, status=429)
        page = error_page(429, _throttled(wait))
        page.headers["Retry-After"] = str(wait)
        return page
    try:
        started = server.sign_in.start(
            _one(form, "issuer"), page_id, authorization.csrf, authorization.expires_at
        )
    except ValueError as err:
        return error_page(400, str(err))
    state = server.state.add_sign_in(started)
    target = server.sign_in.authorization_url(started, state)
    response = RedirectResponse(target, 303, headers=page_headers())
    response.set_cookie(
        SIGN_IN_COOKIE,
        csrf,
        max_age=600,
        path=CALLBACK_PATH,
        secure=server.issuer.startswith("https://"),
        httponly=True,
        samesite="lax",
    )
    return response


@router.get(CALLBACK_PATH, tags=["oauth"], response_model=None)
async def callback(request: Request) -> Response:
    """Back from the OpenID provider: the consent page for the person it proved, or
    the refusal (shown, audited; nothing goes to the MCP client)."""
    server = _server(request)
    if server.sign_in is None:
        return error_page(404, "no sign-in service is configured here")
    params = parse_qs(request.url.query, keep_blank_values=True)
    now = request.app.state.deployment.clock.now()
    state = _one(params, "state")
    started = server.state.take_sign_in(state, now) if state else None
    authorization = server.state.page(started.page_id, now) if started else None
    if started is None or authorization is None:
        server.sign_in_refused(request.scope, "oauth.callback", "oauth.sign_in_state", status=400)
        return error_page(
            400, "this sign-in expired, was used or did not start here: start again from the app"
        )
    csrf = request.cookies.get(SIGN_IN_COOKIE, "")
    client = await run_in_threadpool(server.known_client, authorization.client_id, request.scope)
    if client is None or not _csrf_ok(csrf, started.csrf, csrf):
        server.sign_in_refused(
            request.scope, authorization.client_id, "oauth.sign_in_state", status=403
        )
        return error_page(403, "this sign-in did not start in this browser: start again")
    error, code = _one(params, "error"), _one(params, "code")
    try:
        if error or not code:
            raise OidcSignIn.issuer_error(error or "no code")
        user = await run_in_threadpool(server.sign_in.finish, started, code)
    except SignInRefused as err:
        server.throttle.failed(None, _address(request), now)
        server.sign_in_refused(request.scope, client.client_id, err.reason)
        return error_page(401, err.message)
    server.throttle.succeeded(None, _address(request))
    server.state.signed_in(started.page_id, user)
    await run_in_threadpool(server.signed_in, client.client_id, user)
    page = _page(server, client, authorization, started.page_id, csrf)
    page.delete_cookie(SIGN_IN_COOKIE, path=CALLBACK_PATH)
    return page


@router.post("/oauth/authorize", tags=["oauth"], response_model=None)
async def consent(request: Request) -> Response:
    """The consent form: sign in, pick a playbook, state the intent; answered with a
    redirect to the client carrying a single-use code (or ``access_denied``)."""
    server = _server(request)
    try:
        form = await _form(request)
    except ValueError as err:
        return error_page(400, str(err))
    page_id = _one(form, "page")  # its record holds the request as checked
    authorization = server.state.page(page_id, request.app.state.deployment.clock.now())
    if authorization is None:
        return error_page(400, "this sign-in page expired or was used: start again from the app")
    csrf = _one(form, "csrf")
    if not _csrf_ok(csrf, authorization.csrf, request.cookies.get(CSRF_COOKIE, "")):
        return error_page(403, "the form did not come from this page: start again from the app")
    client = await run_in_threadpool(server.known_client, authorization.client_id, request.scope)
    if client is None:
        return error_page(400, "this app is no longer registered")
    if _one(form, "decision") == "deny":
        server.state.end_page(page_id)
        return RedirectResponse(server.denied(authorization), 303, headers=page_headers())
    intent = _one(form, "intent")

    def again(status: int, message: str) -> Response:
        return _page(
            server,
            client,
            authorization,
            page_id,
            csrf,
            error=message,
            status=status,
            intent=intent,
        )

    user = server.state.page_user(page_id)  # signed in through an OpenID provider
    if user is None:
        local = server.local_user
        if local is None:
            return again(401, "sign in first")
        username, password = _one(form, "username"), _one(form, "password")
        address, clock = _address(request), request.app.state.deployment.clock
        wait = server.throttle.retry_after(username, address, clock.now())
        if wait:  # refused before the password is looked at, and not counted
            server.sign_in_refused(request.scope, client.client_id, THROTTLED, status=429)
            page = again(429, _throttled(wait))
            page.headers["Retry-After"] = str(wait)
            return page
        if not await run_in_threadpool(local.check, username, password):
            server.throttle.failed(username, address, clock.now())
            server.sign_in_refused(request.scope, client.client_id)
            return again(401, "wrong username or password")
        server.throttle.succeeded(username, address)
    try:
        redirect = await run_in_threadpool(
            server.consent, authorization, client, _one(form, "playbook"), intent, user
        )
    except ValueError as err:
        return again(400, str(err))
    server.state.end_page(page_id)
    response = RedirectResponse(redirect, 303, headers=page_headers(authorization.redirect_uri))
    response.delete_cookie(CSRF_COOKIE, path=COOKIE_PATH)
    return response


@router.post("/oauth/token", tags=["oauth"], response_model=None)
async def token(request: Request) -> Response:
    """Authorization code (PKCE) and refresh token grants: the task's token, DPoP-bound
    to the key of the request's ``DPoP`` proof (or, where allowed, a short-lived
    unbound one for a client that sends none)."""
    server = _server(request)
    form: dict[str, list[str]] = {}

    def refused(err: OAuthError) -> Response:
        """The refusal, audited unless it was already (``token.refused``)."""
        if not err.audited:
            token_refused(
                request.app.state.deployment,
                request.scope,
                reason=err.reason,
                status=err.status,
                client_id=_one(form, "client_id") or None,
                grant_type=_one(form, "grant_type") or None,
            )
        return _oauth_error(err)

    try:
        form = await _form(request)
        proof = proof_of(request.headers.raw)
    except (ValueError, ZerolaneError) as err:
        if isinstance(err, ZerolaneError):
            return refused(OAuthError(400, "invalid_request", err.reason, err.message))
        return refused(OAuthError(400, "invalid_request", "oauth.request", str(err)))
    try:
        issued = await run_in_threadpool(server.token, form, proof, request.scope)
    except OAuthError as err:
        return refused(err)
    return JSONResponse(issued.json(), headers=_NO_STORE)
