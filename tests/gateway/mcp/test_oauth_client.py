"""The gateway's OAuth client against token endpoints that answer badly: every such
answer is ``upstream.credential`` naming what was wrong, never echoing the answer."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from aiohttp import web

from zerolane.errors import Unavailable
from zerolane.gateway.mcp.oauth_client import (
    MAX_ANSWER_BYTES,
    AccessToken,
    ClientAuth,
    request_token,
    revoke_token,
)

AUTH = ClientAuth("gateway client", "p@ss:w/rd+=")
FORM = [("grant_type", "client_credentials"), ("audience", "crm")]
Answer = Callable[[web.Request], web.StreamResponse]


@asynccontextmanager
async def endpoint(answer: Answer) -> AsyncIterator[tuple[str, list[web.Request]]]:
    """A token endpoint answering every POST with ``answer``; the requests it got."""
    got: list[web.Request] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()
        got.append(request)
        return answer(request)

    app = web.Application()
    app.router.add_post("/token", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/token", got
    finally:
        await runner.cleanup()


def ask(answer: Answer) -> AccessToken:
    async def main() -> AccessToken:
        async with endpoint(answer) as (url, _):
            return await request_token(url, AUTH, FORM, what="upstream crm")

    return anyio.run(main)


def json_answer(body: Any, status: int = 200) -> Answer:
    return lambda _: web.json_response(body, status=status)


def test_the_client_authenticates_with_client_secret_basic() -> None:
    async def main() -> None:
        body = {"access_token": "tok-1", "token_type": "bearer", "expires_in": 60}
        async with endpoint(json_answer(body)) as (url, got):
            token = await request_token(url, AUTH, FORM, what="upstream crm")
        assert (token.value, token.expires_in) == ("tok-1", 60.0)
        kind, _, encoded = got[0].headers["Authorization"].partition(" ")
        assert kind == "Basic"
        # RFC 6749 2.3.1: id and secret form-urlencoded before Basic
        assert base64.b64decode(encoded).decode() == "gateway+client:p%40ss%3Aw%2Frd%2B%3D"
        assert "tok-1" not in repr(token)
        assert "p@ss" not in repr(AUTH)

    anyio.run(main)


def test_no_expires_in_is_none() -> None:
    assert ask(json_answer({"access_token": "t", "token_type": "Bearer"})).expires_in is None


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (json_answer({"token_type": "Bearer"}), "holds no usable access_token"),
        (json_answer({"access_token": "a b", "token_type": "Bearer"}), "no usable access_token"),
        (json_answer({"access_token": "t", "token_type": "DPoP"}), "is not a bearer token"),
        (json_answer({"access_token": "t", "token_type": "Bearer", "expires_in": 0}), "expires_in"),
        (
            json_answer({"access_token": "t", "token_type": "Bearer", "expires_in": True}),
            "has an invalid expires_in",
        ),
        (json_answer(["t"]), "is not a JSON object"),
        (lambda _: web.Response(text="<html>t</html>"), "is not JSON"),
        (lambda _: web.Response(body=b" " * (MAX_ANSWER_BYTES + 1)), "is too large"),
        (
            json_answer({"error": "invalid_scope", "error_description": "secret-ish"}, 400),
            "refused: HTTP 400 (invalid_scope)",
        ),
        (json_answer({"error": "Not A Code <b>"}, 400), "refused: HTTP 400"),
        (
            lambda _: web.Response(status=302, headers={"Location": "https://elsewhere.test/"}),
            "refused: HTTP 302",
        ),
    ],
)
def test_bad_answers_are_upstream_credential(answer: Answer, said: str) -> None:
    with pytest.raises(Unavailable) as refused:
        ask(answer)
    assert refused.value.reason == "upstream.credential"
    assert refused.value.message.startswith("upstream crm: ")
    assert said in refused.value.message
    for echoed in ("secret-ish", "<b>", "elsewhere"):
        assert echoed not in refused.value.message


def test_revocation_posts_the_token_and_fails_on_an_error_status() -> None:
    async def main() -> None:
        async with endpoint(lambda _: web.Response(status=200)) as (url, got):
            await revoke_token(url, AUTH, "tok-1", what="upstream crm")
        assert got[0].headers["Authorization"].startswith("Basic ")
        async with endpoint(lambda _: web.Response(status=503)) as (url, _):
            with pytest.raises(Unavailable) as refused:
                await revoke_token(url, AUTH, "tok-1", what="upstream crm")
        assert refused.value.message == "upstream crm: the revocation endpoint answered HTTP 503"

    anyio.run(main)


def test_a_server_that_never_answers_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    import zerolane.gateway.mcp.oauth_client as client

    monkeypatch.setattr(client, "TOKEN_SECONDS", 0.3)

    async def main() -> None:
        async def stall(request: web.Request) -> web.Response:
            await anyio.sleep(1.5)
            return web.json_response({})

        app = web.Application()
        app.router.add_post("/token", stall)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/token"
        try:
            with pytest.raises(Unavailable) as refused:
                await request_token(url, AUTH, FORM, what="upstream crm")
        finally:
            await runner.cleanup()
        assert refused.value.message == "upstream crm: the authorization server did not answer"

    anyio.run(main)


def test_the_form_is_sent_as_given() -> None:
    async def main() -> None:
        body = {"access_token": "t", "token_type": "Bearer"}
        seen: list[dict[str, str]] = []

        async def handle(request: web.Request) -> web.Response:
            seen.append({k: str(v) for k, v in (await request.post()).items()})
            return web.json_response(body)

        app = web.Application()
        app.router.add_post("/token", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/token"
        try:
            await request_token(url, AUTH, FORM, what="upstream crm")
        finally:
            await runner.cleanup()
        assert seen == [dict(FORM)]

    anyio.run(main)
