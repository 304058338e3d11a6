"""A sample tool API to put behind the zerolane gateway: finance reports and a wiki.

    python examples/gateway/tool_api.py [--host 127.0.0.1] [--port 9100] [--secrets DIR]

On start it makes the two credentials the gateway injects, if missing, as 0600 files in
``--secrets`` (default: ``secrets/`` next to this file, where ``gateway.toml`` expects
them): ``finance.key`` (the HMAC key of per-task API keys) and ``wiki.token`` (a static
bearer token). The finance API accepts only a valid, unexpired per-task key and says
which task called; the wiki accepts only its bearer token. Agents never hold either:
they reach this API through the gateway.
"""

from __future__ import annotations

import argparse
import hmac
import secrets
import time
from pathlib import Path

from aiohttp import web

from zerolane.errors import Unauthenticated
from zerolane.grants import read_private_file, verify_api_key

REPORTS = {
    "q1": {"quarter": "Q1", "revenue": 1_200_000, "margin": 0.18},
    "q2": {"quarter": "Q2", "revenue": 1_350_000, "margin": 0.21},
    "q3": {"quarter": "Q3", "revenue": 1_410_000, "margin": 0.22},
}
FINANCE_KEY = web.AppKey("finance_key", bytes)
WIKI_TOKEN = web.AppKey("wiki_token", str)
PAGES = web.AppKey("pages", dict)


def ensure_secret(path: Path, make: bytes) -> bytes:
    """The secret in ``path``, written first (mode 0600) when missing."""
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_bytes(make)
    return read_private_file(path)


def _task_of(request: web.Request) -> str:
    presented = request.headers.get("X-Api-Key", "")
    try:
        return verify_api_key(request.app[FINANCE_KEY], presented, time.time())
    except Unauthenticated as err:
        raise web.HTTPUnauthorized(text=f"{err.reason}\n") from None


async def report(request: web.Request) -> web.Response:
    task = _task_of(request)
    found = REPORTS.get(request.match_info["id"])
    if found is None:
        raise web.HTTPNotFound(text="no such report\n")
    return web.json_response({**found, "served_to_task": task})


async def delete_report(request: web.Request) -> web.Response:
    _task_of(request)
    REPORTS.pop(request.match_info["id"], None)
    return web.json_response({"deleted": request.match_info["id"]})


async def ledger(request: web.Request) -> web.Response:
    task = _task_of(request)
    year, quarter = request.match_info["year"], request.match_info["quarter"]
    entries = [{"account": "4000", "amount": 1_410_000}, {"account": "5000", "amount": -1_100_000}]
    return web.json_response({"year": year, "quarter": quarter, "entries": entries, "task": task})


def _check_wiki(request: web.Request) -> None:
    expected = f"Bearer {request.app[WIKI_TOKEN]}"
    if not hmac.compare_digest(request.headers.get("Authorization", ""), expected):
        raise web.HTTPUnauthorized(text="wiki token required\n")


async def page(request: web.Request) -> web.Response:
    _check_wiki(request)
    name = request.match_info["name"]
    pages: dict[str, str] = request.app[PAGES]
    if request.method == "PUT":
        pages[name] = (await request.read()).decode("utf-8", "replace")
        return web.json_response({"saved": name, "by_task": request.headers.get("X-Zerolane-Task")})
    if name not in pages:
        raise web.HTTPNotFound(text="no such page\n")
    return web.Response(text=pages[name], content_type="text/markdown")


def make_app(secrets_dir: Path) -> web.Application:
    app = web.Application(client_max_size=10 << 20)
    app[FINANCE_KEY] = ensure_secret(secrets_dir / "finance.key", secrets.token_hex(32).encode())
    app[WIKI_TOKEN] = ensure_secret(
        secrets_dir / "wiki.token", secrets.token_urlsafe(32).encode()
    ).decode()
    app[PAGES] = {"finance/quarterly/q2": "# Q2\nRevenue 1.35M, margin 21%.\n"}
    app.router.add_get("/finance/reports/{id}", report)
    app.router.add_delete("/finance/reports/{id}", delete_report)
    app.router.add_get("/finance/ledger/{year}/{quarter}", ledger)
    app.router.add_route("GET", "/wiki/pages/{name:.+}", page)
    app.router.add_route("PUT", "/wiki/pages/{name:.+}", page)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--secrets", type=Path, default=Path(__file__).with_name("secrets"))
    args = parser.parse_args()
    web.run_app(make_app(args.secrets), host=args.host, port=args.port, access_log=None)


if __name__ == "__main__":
    main()
