"""``zerolane gateway run|check``: the HTTP gateway in front of agents' tools and APIs."""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from zerolane.audit.events import Actor
from zerolane.cli.background import free_port
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
from zerolane.cli.servers import bound_port, listen, listen_url
from zerolane.errors import ZerolaneError

if TYPE_CHECKING:
    import uvicorn

    from zerolane.config import HttpLimits, TlsConfig
    from zerolane.gateway.config import GatewayConfig
    from zerolane.gateway.http import GatewayApp
    from zerolane.server.deployment import Deployment

app = typer.Typer(
    help="The HTTP gateway: decides every request of a task, injects credentials, forwards.",
    no_args_is_help=True,
)
ConfigOption = Annotated[
    Path,
    typer.Option("--config", "-c", help="Gateway configuration file (TOML or YAML).", exists=False),
]
RELOADER = Actor("system", "gateway-policy-watch")


def build_app(
    config: GatewayConfig, deployment: Deployment, *, listener: str = "gateway"
) -> GatewayApp:
    """The gateway over ``deployment``'s decider; credentials are read now (fail fast);
    its access lines name ``listener``."""
    from zerolane.gateway.credentials import build_credentials
    from zerolane.gateway.http import GatewayApp

    credentials = build_credentials(config, deployment.clock)
    return GatewayApp(
        config,
        deployment.decider,
        credentials,
        listener=listener,
        refusals=deployment.refusals,
    )


def uvicorn_config(
    app: Any,
    host: str,
    port: int,
    log_level: str = "warning",
    tls: dict[str, Any] | None = None,
    limits: HttpLimits | None = None,
) -> uvicorn.Config:
    """How an enforcement point (the HTTP or the MCP gateway) is served: no proxy-header
    trust, no added headers, lifespan on (the MCP gateway's upstreams connect there: a
    failure stops the server starting); ``tls``: :func:`tls_options`. The protocol class
    holds request heads to ``limits`` (the gateway's ``[http]``), keeps the raw request
    target and hands the client certificate of a TLS connection to the app (the ASGI
    TLS extension)."""
    import uvicorn

    from zerolane.config import HttpLimits
    from zerolane.gateway.http.protocol import RawTargetHttpToolsProtocol, with_limits

    protocol = with_limits(RawTargetHttpToolsProtocol, limits or HttpLimits())

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,  # zerolane.logs.configure_logging: one handler, one format
        access_log=False,
        server_header=False,
        date_header=False,
        proxy_headers=False,
        lifespan="on",
        **{**(tls or {}), "http": protocol},  # it passes certs on too
    )


def tls_options(tls: TlsConfig, deployment: Deployment) -> dict[str, Any]:
    """The uvicorn TLS options of a gateway's ``[tls]`` (its files already absolute);
    client certificates chain to the home's X.509 CA unless ``client_ca_file`` says."""
    from zerolane.server.tls import uvicorn_tls

    return uvicorn_tls(tls, base=Path("/"), ca=deployment.x509_ca)


class BackgroundGateway:
    """The gateway served on a loopback port in a daemon thread (demo and tests)."""

    def __init__(self, app: GatewayApp, host: str = "127.0.0.1", port: int | None = None) -> None:
        import uvicorn

        self.port = port if port is not None else free_port(host)
        self.url = f"http://{host}:{self.port}"
        self._server = uvicorn.Server(uvicorn_config(app, host, self.port))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> BackgroundGateway:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the gateway did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


def _watch_policies(deployment: Deployment) -> None:
    """Load the policies now (refusing to start on an invalid set) and follow changes."""

    def on_change(ok: bool, detail: str) -> None:
        deployment.record_policy_reload(ok, detail, RELOADER)
        state = "reloaded" if ok else "reload refused, old set active"
        err_console.print(f"policy files changed: {state}: {detail[:200]}", highlight=False)

    deployment.engine.watch(on_reload=on_change)


@app.command("run")
def run(
    config: ConfigOption,
    home: HomeOption = None,
    host: Annotated[str | None, typer.Option(help="Address [default: config listen.host]")] = None,
    port: Annotated[
        int | None, port_option("Port, 0 for any free one [default: config listen.port]")
    ] = None,
    log_level: LogLevelOption = "warning",
    log_format: LogFormatOption = "text",
) -> None:
    """Serve the gateway until stopped, deciding with the home's policies and tasks."""
    import uvicorn

    from zerolane.logs import configure_logging

    configure_logging(log_level, log_format)

    from zerolane.gateway.config import load_gateway_config
    from zerolane.server.deployment import Deployment, resolve_home

    try:
        gateway_config = load_gateway_config(config)
        deployment = Deployment.open(resolve_home(home))
    except ZerolaneError as err:
        fail(err)
        return
    try:
        gateway = build_app(gateway_config, deployment)
        tls = tls_options(gateway_config.tls, deployment)
        _watch_policies(deployment)
    except ZerolaneError as err:
        deployment.close()
        fail(err)
        return
    bind_host = host or gateway_config.listen.host
    bind_port = port if port is not None else gateway_config.listen.port
    try:  # bound here, so the port printed is the one listened on (port 0: a free one)
        sock = listen("the gateway", bind_host, bind_port)
    except ZerolaneError as err:
        deployment.close()
        fail(err)
    bind_port = bound_port(sock)
    # uvicorn re-raises SIGTERM after its graceful shutdown: exit cleanly on it instead
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    url = listen_url(bind_host, bind_port)
    url = url.replace("http://", "https://", 1) if tls else url
    typer.echo(f"zerolane gateway on {url} (public {gateway_config.public_url})", err=True)
    try:
        served = uvicorn_config(gateway, bind_host, bind_port, log_level, tls, gateway_config.http)
        uvicorn.Server(served).run(sockets=[sock])
    finally:
        sock.close()
        deployment.close()


@app.command("check")
def check(config: ConfigOption, as_json: JsonOption = False) -> None:
    """Validate a gateway configuration (and read its credentials); exit 2 if invalid."""
    from zerolane.gateway.config import load_gateway_config
    from zerolane.gateway.credentials import build_credentials

    try:
        parsed = load_gateway_config(config)
        sources = build_credentials(parsed)
    except ZerolaneError as err:
        fail(err)
    if as_json:
        upstreams = []
        for upstream in parsed.upstreams:
            credential = sources.get(upstream.name)
            upstreams.append(
                {
                    "name": upstream.name,
                    "prefix": upstream.prefix,
                    "base_url": upstream.base_url,
                    "destination": upstream.destination,
                    "routes": len(upstream.routes),
                    "injects": credential.header if credential else None,
                }
            )
        audience = parsed.audience
        print_json(
            {
                "ok": True,
                "public_url": parsed.public_url,
                "audience": audience,
                "upstreams": upstreams,
            }
        )
        return
    typer.echo(f"gateway config OK: public URL {parsed.public_url}, audience {parsed.audience}")
    for upstream in parsed.upstreams:
        credential = sources.get(upstream.name)
        injected = f"injects {credential.header}" if credential else "no credential"
        typer.echo(
            f"  {upstream.prefix} -> {upstream.base_url} ({upstream.name}, destination "
            f"{upstream.destination}): {len(upstream.routes)} routes, {injected}"
        )
