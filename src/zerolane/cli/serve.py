"""``zerolane up``: serve the control plane, and the gateways the home's config lists."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from zerolane.audit.events import Actor
from zerolane.cli import gateway as http_gateway
from zerolane.cli import mcp_gateway
from zerolane.cli.common import (
    HomeOption,
    LogFormatOption,
    LogLevelOption,
    err_console,
    port_option,
)
from zerolane.cli.pidfile import remove_own, server_pid, write_listeners, write_own
from zerolane.cli.servers import ServerGroup, listen_url
from zerolane.cli.status import policy_mode_warning
from zerolane.errors import Conflict, InvalidInput, ZerolaneError

if TYPE_CHECKING:
    import uvicorn

    from zerolane.cli.probe_schedule import ScheduledProbe
    from zerolane.config import GatewayEntry, HttpLimits
    from zerolane.server.deployment import Deployment

RELOADER = Actor("system", "policy-reload")


def _install_reload(deployment: Deployment) -> None:
    """SIGHUP and changes to the policy folder reload policies (the old set stays on error).

    Every server of the process decides with this one engine, so one watcher serves all.
    """

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


@dataclass(frozen=True, slots=True)
class Gateway:
    """A ``[[gateways]]`` entry, read and built: an ASGI app and where it listens."""

    kind: str
    where: str  # gateways[0] (http gateway "tools"): names it in errors
    title: str  # http gateway "tools"
    app: Any
    host: str
    port: int
    path: str
    public_url: str
    #: uvicorn's TLS options of the gateway's ``[tls]`` (``{}``: plain HTTP)
    tls: dict[str, Any] | None = None
    #: the gateway's ``[http]``: how much of a request head its listener reads (None:
    #: the defaults)
    http: HttpLimits | None = None

    def server_config(self, log_level: str) -> uvicorn.Config:
        """Served as ``zerolane gateway run`` / ``zerolane mcp-gateway run`` serve it."""
        return http_gateway.uvicorn_config(
            self.app, self.host, self.port, log_level, self.tls, self.http
        )

    def started_line(self, port: int) -> str:
        """What ``zerolane up`` prints once it serves on ``port`` (the one it got for 0)."""
        url = _url(self.host, port, self.path, bool(self.tls))
        return f"zerolane {self.title} on {url} (public {self.public_url})"


def _build(entry: GatewayEntry, where: str, path: Path, deployment: Deployment) -> Gateway:
    from zerolane.gateway import mcp
    from zerolane.gateway.config import load_gateway_config

    title = f'{entry.kind} gateway "{entry.name}"'
    if entry.kind == "http":
        config = load_gateway_config(path)
        # reads its credentials now
        app = http_gateway.build_app(config, deployment, listener=f"gateway:{entry.name}")
        listen = config.listen
        tls = http_gateway.tls_options(config.tls, deployment)
        return Gateway(
            "http",
            where,
            title,
            app,
            listen.host,
            listen.port,
            "",
            config.public_url,
            tls,
            config.http,
        )
    if entry.kind == "mcp":
        settings = mcp.load_gateway_config(path)
        mcp_app = mcp_gateway.build_app(settings, deployment, listener=f"mcp-gateway:{entry.name}")
        return Gateway(
            "mcp",
            where,
            title,
            mcp_app,
            settings.host,
            settings.port,
            settings.path,
            settings.endpoint,
            http_gateway.tls_options(settings.tls, deployment),
            settings.http,
        )
    raise InvalidInput("config.gateway_kind", f"unknown gateway kind {entry.kind!r}")


def load_gateways(deployment: Deployment) -> list[Gateway]:
    """Every enabled ``[[gateways]]`` entry, its file read and its app built.

    A problem is raised naming the entry (``gateways[1] (mcp gateway "tools"): ...``),
    before anything listens.
    """
    built: list[Gateway] = []
    for index, entry in enumerate(deployment.config.gateways):
        if not entry.enabled:
            continue
        where = f'gateways[{index}] ({entry.kind} gateway "{entry.name}")'
        path = entry.config_path(deployment.home)
        try:
            if not path.is_file():
                raise InvalidInput(
                    "config.gateway_file", f"no gateway configuration file at {path}"
                )
            built.append(_build(entry, where, path, deployment))
        except ZerolaneError as err:
            lines = err.message.splitlines() or [""]  # each problem of a file its line
            raise type(err)(err.reason, "\n".join(f"{where}: {x}" for x in lines)) from err
    return built


#: a server of the group and its "started" line, given the port it listens on
Announcement = tuple[str, Callable[[int], str]]


def _url(host: str, port: int, path: str, tls: bool) -> str:
    url = listen_url(host, port, path)
    return url.replace("http://", "https://", 1) if tls else url


def _serve(
    group: ServerGroup,
    stop: threading.Event,
    home: Path,
    announce: list[Announcement],
    notes: list[str],
    started: Callable[[dict[str, str]], object] | None = None,
) -> None:
    """Bind, start, announce (each server on the port it got) and serve until ``stop``
    (or until a server fails); ``started`` is told where each server listens."""
    group.bind()
    if not group.start(stop):
        return  # stopped while starting
    write_own(home)
    write_listeners(home, group.listeners())
    if started is not None:
        started(group.listeners())
    for label, line in announce:
        typer.echo(line(group.port(label)), err=True)
    for note in notes:
        typer.echo(note, err=True)
    group.wait(stop)


class _ProbeStarter:
    """Starts the scheduled probe (``[probe] every``) once the control plane listens."""

    def __init__(self, deployment: Deployment, label: str) -> None:
        self._deployment = deployment
        self._label = label
        self._probe: ScheduledProbe | None = None

    def start(self, listeners: dict[str, str]) -> None:
        schedule = self._deployment.config.probe
        if schedule.every is None:
            return
        from zerolane.cli.probe_schedule import ScheduledProbe

        self._probe = ScheduledProbe(self._deployment, schedule, listeners[self._label])
        self._probe.start()
        typer.echo(
            f"probing this deployment every {schedule.every} s with {self._probe.file}", err=True
        )

    def stop(self) -> None:
        if self._probe is not None:
            self._probe.stop()


def register(app: typer.Typer) -> None:
    @app.command("up")
    def up(
        home: HomeOption = None,
        host: Annotated[
            str | None,
            typer.Option(help="Address the API listens on \\[default: server.host, 127.0.0.1]"),
        ] = None,
        port: Annotated[
            int | None,
            port_option(
                "Port the API listens on, 0 for any free one \\[default: server.port, 8700]"
            ),
        ] = None,
        no_gateways: Annotated[
            bool,
            typer.Option(
                "--no-gateways",
                help="Serve only the API: start none of the gateways the config lists.",
            ),
        ] = False,
        log_level: LogLevelOption = "warning",
        log_format: LogFormatOption = "text",
    ) -> None:
        """Serve the control-plane API, and the gateways the config lists, until stopped.

        Each enabled \\[\\[gateways]] entry of zerolane.toml (kind "http" or "mcp", and
        the gateway's own config file) is served in this process on the listen address
        of its file, deciding with the API's store, keys and policies. Everything starts
        or nothing does: a bad gateway entry or file exits 2, a port in use or a
        gateway that fails to start exits 1, before anything serves.

        SIGHUP reloads the policies; SIGTERM or Ctrl-C drains every server and exits 0.
        """
        import uvicorn  # imported here so other commands start fast

        from zerolane.gateway.http.protocol import TlsScopeHttpToolsProtocol, with_limits
        from zerolane.grants.leases import GrantSweeper
        from zerolane.logs import configure_logging
        from zerolane.server.app import create_app
        from zerolane.server.deployment import Deployment, resolve_home
        from zerolane.server.tls import uvicorn_tls

        configure_logging(log_level, log_format)
        path = resolve_home(home)
        running = server_pid(path)
        if running is not None and running != os.getpid():
            raise Conflict(
                "server.running",
                f"zerolane up (pid {running}) already serves {path}: stop it first",
            )
        deployment = Deployment.open(path)
        try:
            gateways = [] if no_gateways else load_gateways(deployment)
            _install_reload(deployment)  # loads the policies: an invalid set stops here
        except ZerolaneError:
            deployment.close()
            raise  # printed by main() as ``error <reason>: <message>``, exit 2 (or 1)
        bind_host = host or deployment.config.server.host
        bind_port = port if port is not None else deployment.config.server.port
        try:  # [tls]: HTTPS served here, client certificates against the trust domain's CA
            tls = uvicorn_tls(deployment.config.tls, base=path, ca=deployment.x509_ca)
        except ZerolaneError:
            deployment.close()
            raise
        group = ServerGroup()
        api = "the control plane"
        group.add(
            api,
            uvicorn.Config(
                create_app(deployment),
                host=bind_host,
                port=bind_port,
                log_level=log_level,
                log_config=None,  # zerolane.logs.configure_logging: one handler, one format
                access_log=False,
                server_header=False,
                # the peer is the TCP peer: X-Forwarded-For would let a caller pose as
                # one of [tls] trusted_proxies (and have its certificate header believed)
                proxy_headers=False,
                # request heads held to [http] (and the client certificate passed on)
                **{**tls, "http": with_limits(TlsScopeHttpToolsProtocol, deployment.config.http)},
            ),
        )
        announce: list[Announcement] = [
            (api, lambda p: f"zerolane control plane on {_url(bind_host, p, '', bool(tls))}")
        ]
        for gw in gateways:
            group.add(gw.where, gw.server_config(log_level))
            announce.append((gw.where, gw.started_line))
        notes: list[str] = []
        configured = sum(1 for entry in deployment.config.gateways if entry.enabled)
        if no_gateways and configured:
            notes.append(f"--no-gateways: {configured} configured gateway(s) not started")
        shadow = policy_mode_warning(deployment.config.policy_mode)
        if shadow is not None:
            notes.append(f"WARNING {shadow}")

        stop = threading.Event()

        def on_signal(signum: int, _: object) -> None:
            if stop.is_set():
                group.force()  # a second signal: stop without waiting for requests
            else:  # a plain write: a handler must not import (rich would, lazily), as a
                # second signal interrupting an import left an ImportError behind
                name = signal.Signals(signum).name
                sys.stderr.write(f"{name}: stopping, draining requests in flight\n")
                sys.stderr.flush()
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        failure: ZerolaneError | None = None
        # retries failed grant revocations, revokes grants of ended or expired tasks
        sweeper = GrantSweeper(deployment.grants, deployment.config.grants.retry_interval)
        sweeper.start()
        probes = _ProbeStarter(deployment, api)
        try:
            _serve(group, stop, path, announce, notes, probes.start)
        except ZerolaneError as err:
            failure = type(err)(err.reason, f"{err.message}; nothing is serving")
        finally:
            probes.stop()
            sweeper.stop()
            group.stop()
            remove_own(path)
            deployment.close()
        if failure is not None:
            raise failure
