"""``zerolane up``: serve the control plane."""

from __future__ import annotations

from typing import Annotated

import typer

from zerolane.cli.common import HomeOption
from zerolane.server.deployment import Deployment, resolve_home


def register(app: typer.Typer) -> None:
    @app.command("up")
    def up(
        home: HomeOption = None,
        host: Annotated[
            str | None, typer.Option(help="Address to listen on [default: config]")
        ] = None,
        port: Annotated[
            int | None, typer.Option(help="Port to listen on [default: config, 8700]")
        ] = None,
        log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "warning",
    ) -> None:
        """Serve the control-plane API (attestation, key sets, admin) until stopped."""
        import uvicorn  # imported here so other commands start fast

        from zerolane.server.app import create_app

        deployment = Deployment.open(resolve_home(home))
        bind_host = host or deployment.config.server.host
        bind_port = port if port is not None else deployment.config.server.port
        typer.echo(f"zerolane control plane on http://{bind_host}:{bind_port}", err=True)
        try:
            uvicorn.run(
                create_app(deployment),
                host=bind_host,
                port=bind_port,
                log_level=log_level,
                access_log=False,
                server_header=False,
            )
        finally:
            deployment.close()
