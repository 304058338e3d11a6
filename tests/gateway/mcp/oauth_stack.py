"""A control plane serving standard MCP clients (``[oauth]``) at a port known before it
starts (its ``public_url`` is the issuer), and the MCP gateway in front of the sample
server, whose audience is the one resource clients may ask tokens for."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.gateway.mcp.harness import SAMPLE, GatewayServer
from tests.server.oauth_fixtures import TD, ControlPlane, oauth_home
from zerolane.cli.background import free_port
from zerolane.cli.mcp_gateway import enforcement_of
from zerolane.gateway.mcp import GatewayConfig, parse_gateway_config
from zerolane.server.deployment import Deployment


@dataclass
class OAuthStack:
    deployment: Deployment
    cp_url: str
    config: GatewayConfig
    stdio_log: Path

    @property
    def url(self) -> str:
        return self.config.endpoint


@contextmanager
def oauth_stack(
    root: Path,
    *,
    bearer: bool,
    oauth: dict[str, Any] | None = None,
    configure: Callable[[Any], None] | None = None,
) -> Iterator[OAuthStack]:
    """``oauth``: more ``[oauth]`` keys; ``configure``: called with the control
    plane's app before it starts."""
    cp_port, gw_port = free_port(), free_port()
    cp_url = f"http://127.0.0.1:{cp_port}"
    stdio_log = root / "stdio.jsonl"
    config = parse_gateway_config(
        {
            "listen": {"host": "127.0.0.1", "port": gw_port},
            "public_url": f"http://127.0.0.1:{gw_port}",
            "authorization_servers": [cp_url],
            "servers": [
                {
                    "name": "tools",
                    "command": sys.executable,
                    "args": [str(SAMPLE), "--log", str(stdio_log)],
                    "destination": f"reports.{TD}",
                    "tools": {"read_report": {"sensitivity": "internal"}},
                }
            ],
        }
    )
    deployment = oauth_home(
        root / "home", public_url=cp_url, resource=config.audience, bearer=bearer, oauth=oauth
    )
    try:
        control_plane = ControlPlane(deployment, cp_port)
        if configure is not None:
            configure(control_plane.app)
        with (
            control_plane,
            GatewayServer(config, enforcement_of(deployment)),
        ):
            yield OAuthStack(deployment, cp_url, config, stdio_log)
    finally:
        deployment.close()
