"""``zerolane up``: serve the control plane."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from zerolane.audit.events import Actor
from zerolane.cli.common import HomeOption, err_console
from zerolane.errors import ZerolaneError
from zerolane.fsutil import ensure_private_dir, write_private
from zerolane.server.deployment import Deployment, resolve_home

PID_FILE = Path("run") / "zerolane.pid"
RELOADER = Actor("system", "policy-reload")


def _install_reload(deployment: Deployment) -> None:
    """SIGHUP and changes to the policy folder reload policies (the old set stays on error)."""

    def reload(*_: object) -> None:
        try:
            version = deployment.reload_policies(RELOADER)
            err_console.print(f"policies reloaded: {version[:12]}", highlight=False)
        except ZerolaneError as err:
            err_console.print(f"policy reload refused, old set active: {err}", highlight=False)

    signal.signal(signal.SIGHUP, reload)

    def on_change(ok: bool, detail: str) -> None:
        # the engine already reloaded (or refused, keeping the old set): record it
        deployment.record_policy_reload(ok, detail, Actor("system", "policy-watch"))
        state = "reloaded" if ok else "reload refused, old set active"
        err_console.print(f"policy files changed: {state}: {detail[:200]}", highlight=False)

    deployment.engine.watch(on_reload=on_change)


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
        """Serve the control-plane API until stopped. SIGHUP reloads policies."""
        import uvicorn  # imported here so other commands start fast

        from zerolane.server.app import create_app

        path = resolve_home(home)
        deployment = Deployment.open(path)
        bind_host = host or deployment.config.server.host
        bind_port = port if port is not None else deployment.config.server.port
        ensure_private_dir(path / PID_FILE.parent)
        write_private(path / PID_FILE, f"{os.getpid()}\n".encode())
        _install_reload(deployment)
        # uvicorn re-raises SIGTERM after its graceful shutdown; exit cleanly on it so the
        # pid file is removed and the stores are closed.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
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
            with contextlib.suppress(OSError):
                (path / PID_FILE).unlink()
            deployment.close()
