"""``zerolane status``: is a ``zerolane up`` serving this home, and is each server healthy?

Like ``spire-server healthcheck``: exit 0 when every server of the running ``up``
answers ``GET /healthz`` with 200, 1 when none runs or one does not answer. It also
says when the home's Cedar schema makes every decision fail closed (an earlier shipped
one, or one without ``context.risk``) and what to run (``zerolane policy schema
upgrade``), and when its whole policy set runs in shadow mode (``policy_mode =
"shadow"``: nothing the policies deny is refused); neither changes the exit code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from zerolane.cli.common import (
    HomeOption,
    JsonOption,
    cells,
    console,
    err_console,
    print_json,
)
from zerolane.cli.pidfile import read_listeners, server_pid
from zerolane.errors import InvalidInput

#: the most a probe may wait for an answer, in seconds
MAX_TIMEOUT = 60.0


def _probe(base_url: str, timeout: float) -> tuple[bool, str]:
    """(healthy, what was seen) for ``GET <base_url>/healthz``; TLS is verified against
    the system's trust store."""
    import httpx

    try:
        response = httpx.get(f"{base_url}/healthz", timeout=timeout, follow_redirects=False)
    except httpx.HTTPError as err:
        return False, f"{type(err).__name__}: {err}"[:200]
    if response.status_code != 200:
        return False, f"HTTP {response.status_code}"
    return True, "HTTP 200"


def _schema_advice(root: Path) -> str | None:
    """What to do about the home's schema when it fails every decision (None: nothing)."""
    from zerolane.cli.policy import home_policies
    from zerolane.policy.schema_upgrade import schema_state

    try:
        return schema_state(home_policies(root)).advice
    except OSError:  # an unreadable folder: the servers' own checks say so
        return None


def policy_mode_warning(mode: str) -> str | None:
    """What to say of a home whose whole policy set runs in ``mode`` (None: enforced):
    in shadow, nothing the policies deny is refused, so it must never go unnoticed."""
    if mode != "shadow":
        return None
    return (
        'policy_mode = "shadow": what the policies deny is let through, audited as a '
        'would-deny (zerolane report shadow); set policy_mode = "enforce" in '
        "zerolane.toml and restart to enforce them"
    )


def register(app: typer.Typer) -> None:
    @app.command("status")
    def status(
        home: HomeOption = None,
        timeout: Annotated[
            float,
            typer.Option(min=0.1, max=MAX_TIMEOUT, help="Seconds each server may take to answer"),
        ] = 2.0,
        as_json: JsonOption = False,
    ) -> None:
        """Health of the zerolane up serving this home: exit 0 when every server it
        started answers /healthz, 1 when none runs or one does not answer."""
        from zerolane.config import CONFIG_NAME, load_config
        from zerolane.server.deployment import resolve_home

        root = resolve_home(home)
        if not (root / CONFIG_NAME).is_file():
            raise InvalidInput(
                "home.missing", f"no zerolane home at {root} (run 'zerolane init' first)"
            )
        advice = _schema_advice(root)
        mode = load_config(root).policy_mode  # (a configuration it refuses exits 2)
        pid = server_pid(root)
        listeners = read_listeners(root, pid) if pid is not None else {}
        servers = []
        for label, url in listeners.items():
            healthy, seen = _probe(url, timeout)
            servers.append({"server": label, "url": url, "healthy": healthy, "seen": seen})
        ok = pid is not None and bool(servers) and all(s["healthy"] for s in servers)
        if as_json:
            print_json(
                {
                    "home": str(root),
                    "pid": pid,
                    "healthy": ok,
                    "servers": servers,
                    "policy_schema": advice,
                    "policy_mode": mode,
                }
            )
        elif pid is None:
            typer.echo(f"not running: no zerolane up serves {root}")
        else:
            state = "healthy" if ok else "UNHEALTHY"
            typer.echo(f"{state}: zerolane up (pid {pid}) serves {root}")
            if not servers:
                typer.echo("  it has not recorded its servers (still starting?)")
            for s in servers:
                mark = "ok" if s["healthy"] else "FAIL"
                console.print(*cells(f"  {mark:<4}", s["url"], s["server"], f"({s['seen']})"))
        shadow = policy_mode_warning(mode)
        for warning in (advice, shadow):
            if warning is not None and not as_json:
                err_console.print(f"WARNING {warning}", markup=False, highlight=False)
        if not ok:
            raise typer.Exit(1)
