"""``zerolane forward-auth``: decide for nginx, Traefik or Envoy (docs/forward-auth.md)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from zerolane.cli.common import (
    HomeOption,
    JsonOption,
    LogFormatOption,
    LogLevelOption,
    err_console,
    fail,
    port_option,
    print_json,
)
from zerolane.cli.serve import _install_reload as install_policy_reload
from zerolane.cli.servers import bound_port, listen, listen_url
from zerolane.errors import ZerolaneError
from zerolane.hosts import is_loopback

app = typer.Typer(
    help="Forward-auth: a proxy you run (nginx, Traefik, Envoy) enforces, zerolane decides.",
    no_args_is_help=True,
)


@app.callback()
def forward_auth() -> None:
    """Forward-auth for nginx auth_request, Traefik ForwardAuth and Envoy ext_authz."""


@app.command("run")
def run(
    config: Annotated[
        Path,
        typer.Option("--config", help="Forward-auth config (TOML, YAML or JSON)", exists=True),
    ],
    home: HomeOption = None,
    host: Annotated[str | None, typer.Option(help="Address [default: config]")] = None,
    port: Annotated[int | None, port_option("Port, 0 for any free one [default: config]")] = None,
    log_level: LogLevelOption = "warning",
    log_format: LogFormatOption = "text",
) -> None:
    """Serve the forward-auth endpoint, deciding with this home's tasks and policies.

    Only the proxy may reach it: it trusts the proxy's X-Original-* / X-Forwarded-* headers.
    Task tokens must name its audience (default: public_url): open the API's tasks with it.
    A client-certificate header ([tls] client_cert_header, for certificate-bound tokens)
    is believed only from [tls] trusted_proxies. SIGHUP and policy file changes reload
    policies.
    """
    import uvicorn  # imported here so other commands start fast

    from zerolane.gateway.forward_auth import create_app
    from zerolane.gateway.forward_auth_config import load_config
    from zerolane.gateway.http.protocol import HeadLimitedHttpToolsProtocol, with_limits
    from zerolane.logs import configure_logging
    from zerolane.server.deployment import Deployment, resolve_home

    configure_logging(log_level, log_format)
    try:
        settings = load_config(config)
        deployment = Deployment.open(resolve_home(home))
    except ZerolaneError as err:
        fail(err)
        return
    bind_host = host or settings.host
    try:  # bound here, so the port printed is the one listened on (port 0: a free one)
        sock = listen("forward-auth", bind_host, port if port is not None else settings.port)
    except ZerolaneError as err:
        deployment.close()
        fail(err)
    bind_port = bound_port(sock)
    if not is_loopback(bind_host):
        err_console.print(
            f"warning: listening on {bind_host}: make sure only the proxy can reach it",
            highlight=False,
        )
    install_policy_reload(deployment)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    typer.echo(
        f"zerolane forward-auth ({settings.proxy}) on "
        f"{listen_url(bind_host, bind_port, settings.endpoint)} for {settings.origin} "
        f"(task tokens for {settings.audience})",
        err=True,
    )
    try:
        served = uvicorn.Config(
            create_app(settings, deployment.decider, deployment.audit),
            host=bind_host,
            port=bind_port,
            log_level=log_level,
            log_config=None,  # zerolane.logs.configure_logging: one handler, one format
            access_log=False,
            server_header=False,
            # the proxy's headers are read by the app, never trusted here: the ASGI client
            # stays the TCP peer, which [tls] trusted_proxies is checked against
            proxy_headers=False,
            # request heads held to [http]: the proxy's forwarded headers must fit
            http=with_limits(HeadLimitedHttpToolsProtocol, settings.http),
        )
        uvicorn.Server(served).run(sockets=[sock])
    finally:
        sock.close()
        deployment.close()


@app.command("check")
def check(
    config: Annotated[
        Path,
        typer.Option("--config", help="Forward-auth config (TOML, YAML or JSON)", exists=True),
    ],
    as_json: JsonOption = False,
) -> None:
    """Validate a forward-auth configuration; exit 2 naming the problem.

    Prints where the proxy asks, the origin, the destination, the audience task tokens
    must name (default: public_url) and every route, with its mode (enforce or shadow).
    """
    from zerolane.gateway.forward_auth_config import load_config

    try:
        settings = load_config(config)
    except ZerolaneError as err:
        fail(err)
    routes = [
        {
            "method": r.method,
            "path": r.path,
            "action": r.action,
            "resource": r.resource,
            "mode": "enforce" if settings.shadow_of(r) is None else "shadow",
        }
        for r in settings.routes
    ]
    if as_json:
        print_json(
            {
                "ok": True,
                "proxy": settings.proxy,
                "endpoint": settings.endpoint,
                "listen": listen_url(settings.host, settings.port, settings.endpoint),
                "origin": settings.origin,
                "audience": settings.audience,
                "destination": settings.destination,
                "routes": routes,
            }
        )
        return
    typer.echo(
        f"forward-auth config OK: {settings.proxy} asks "
        f"{listen_url(settings.host, settings.port, settings.endpoint)} about "
        f"{settings.origin} (destination {settings.destination}, "
        f"task tokens for {settings.audience})"
    )
    for r in routes:
        shadow = "  (shadow: denies let through, audited)" if r["mode"] == "shadow" else ""
        typer.echo(f"  {r['method']} {r['path']} -> {r['action']} {r['resource']}{shadow}")
