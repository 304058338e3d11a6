"""``zerolane mcp-gateway run|check``: the MCP gateway in front of upstream MCP servers."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from zerolane.audit.events import Actor
from zerolane.cli.common import (
    HomeOption,
    JsonOption,
    LogFormatOption,
    LogLevelOption,
    err_console,
    fail,
    print_json,
)
from zerolane.cli.gateway import tls_options, uvicorn_config
from zerolane.cli.servers import bound_port, listen, listen_url
from zerolane.errors import ZerolaneError

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from zerolane.gateway.mcp import Enforcement, GatewayConfig
    from zerolane.server.deployment import Deployment

app = typer.Typer(
    help="The MCP gateway: an OAuth-protected MCP server deciding every tools/call.",
    no_args_is_help=True,
)


@app.callback()
def mcp_gateway() -> None:
    """The MCP gateway: an OAuth-protected MCP server deciding every tools/call."""


ConfigOption = Annotated[
    Path,
    typer.Option("--config", help="Gateway config file (TOML).", exists=True, dir_okay=False),
]


def enforcement_of(deployment: Deployment) -> Enforcement:
    """The core services of an opened deployment, as the gateway uses them."""
    from zerolane.gateway.mcp import Enforcement

    return Enforcement(
        decider=deployment.decider,
        authenticator=deployment.authenticator,
        tasks=deployment.stores,
        engine=deployment.policies.get,
        audit=deployment.audit,
        clock=deployment.clock,
        lifecycle=deployment.lifecycle,
        internal_destinations=tuple(deployment.config.tasks.internal_destinations),
        sign=deployment.keyring.sign,
        refusals=deployment.refusals,
        shadow_policies=deployment.config.policy_mode == "shadow",
    )


def build_app(
    settings: GatewayConfig, deployment: Deployment, *, listener: str = "mcp-gateway"
) -> Starlette:
    """The MCP gateway over ``deployment``'s decider, store and audit log; its access
    lines name ``listener``."""
    from zerolane.gateway.mcp import create_gateway_app

    return create_gateway_app(settings, enforcement_of(deployment), listener=listener)


def _watch_policies(deployment: Deployment) -> None:
    def on_change(ok: bool, detail: str) -> None:
        deployment.record_policy_reload(ok, detail, Actor("system", "mcp-gateway-policy-watch"))
        state = "reloaded" if ok else "reload refused, old set active"
        err_console.print(f"policy files changed: {state}: {detail[:200]}", highlight=False)

    deployment.engine.watch(on_reload=on_change)


@app.command("run")
def run(
    config: ConfigOption,
    home: HomeOption = None,
    log_level: LogLevelOption = "warning",
    log_format: LogFormatOption = "text",
) -> None:
    """Serve the MCP gateway until stopped (policy file changes are picked up).

    Once every upstream server has had its first attempt, a log line says which serve
    (only those that initialized count); one that cannot start is logged once with its
    cause and retried with backoff. ``mcp-gateway check`` tries them all first."""
    import uvicorn  # imported here so other commands start fast

    from zerolane.gateway.mcp import load_gateway_config
    from zerolane.logs import configure_logging

    configure_logging(log_level, log_format)
    from zerolane.server.deployment import Deployment, resolve_home

    settings = load_gateway_config(config)
    deployment = Deployment.open(resolve_home(home))
    try:
        gateway = build_app(settings, deployment)
        tls = tls_options(settings.tls, deployment)
        _watch_policies(deployment)
        # bound here, so the port printed is the one listened on (port 0: a free one)
        sock = listen("the MCP gateway", settings.host, settings.port)
        port = bound_port(sock)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        url = listen_url(settings.host, port, settings.path)
        url = url.replace("http://", "https://", 1) if tls else url
        err_console.print(
            f"zerolane MCP gateway on {url} (public: {settings.endpoint})",
            highlight=False,
            markup=False,
        )
        try:
            served = uvicorn_config(gateway, settings.host, port, log_level, tls, settings.http)
            uvicorn.Server(served).run(sockets=[sock])
        finally:
            sock.close()
    finally:
        deployment.close()


@app.command("check")
def check(config: ConfigOption, as_json: JsonOption = False) -> None:
    """Start every upstream server, initialize it, list its tools and stop it; exit 1
    naming each one that cannot start (and why), 2 if the config is invalid."""
    from zerolane.gateway.mcp import load_gateway_config
    from zerolane.gateway.mcp.check import check_upstreams

    try:
        settings = load_gateway_config(config)
        checks = check_upstreams(settings)
    except ZerolaneError as err:
        fail(err)
    if as_json:
        upstreams = [{"name": c.name, "tools": list(c.tools)} for c in checks]
        print_json({"ok": True, "endpoint": settings.endpoint, "upstreams": upstreams})
        return
    typer.echo(f"MCP gateway config OK: endpoint {settings.endpoint}")
    for checked in checks:
        typer.echo(f"  {checked.name}: serving, {len(checked.tools)} tool(s)")
