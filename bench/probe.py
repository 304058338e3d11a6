"""How long ``zerolane probe`` takes against a local deployment, and how that grows
with the target's size (issue 14's benchmark).

Routes: a zerolane home, its control plane and an HTTP gateway in front of the echo
upstream (``tests/gateway/echo_upstream.py``), all on loopback; the gateway holds ``N``
routes (``--routes``). The probe runs every HTTP scenario of its catalog with
credentials from the home, as ``zerolane probe`` would.

Tools: the MCP gateway in front of the sample MCP server (``examples/mcp/sample_server.py``
over stdio) serving ``N`` more tools (``--tools``); the probe runs the whole catalog
against the MCP endpoint (the twin of the token and proof scenarios is an
``initialize``; ``tools/list`` pages through every tool).

Each size runs ``--rounds`` times; the tables show the median wall time per size, its
ratio to the smallest size measured in the same run, and the time per scenario.

    .venv/bin/python bench/probe.py --routes 10 100 1000 --tools 10 100 1000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
ECHO = ROOT / "tests" / "gateway" / "echo_upstream.py"
SAMPLE = ROOT / "examples" / "mcp" / "sample_server.py"
#: the MCP twin of the token and proof scenarios
INITIALIZE = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "1"},
        },
    }
).encode()
TD = "bench-probe.example"
AUDIENCE = "urn:zerolane:bench:probe"


@contextmanager
def echo_upstream(port: int) -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, str(ECHO), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{url}/__count", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the echo upstream did not start") from None
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def gateway_toml(folder: Path, port: int, upstream: str, routes: int) -> Path:
    lines = [
        f'public_url = "http://127.0.0.1:{port}"',
        f'audience = "{AUDIENCE}"',
        "[listen]",
        'host = "127.0.0.1"',
        f"port = {port}",
        "[[upstreams]]",
        'name = "bench"',
        f'base_url = "{upstream}/bench"',
        'prefix = "/bench"',
        'destination = "bench.internal"',
        "[[upstreams.routes]]",
        'method = "DELETE"',
        'path = "/r0/{id}"',
        'action = "delete"',
        'resource = "bench/r0/{id}"',
    ]
    for n in range(routes):
        lines += [
            "[[upstreams.routes]]",
            'method = "GET"',
            f'path = "/r{n}/{{id}}"',
            'action = "read"',
            f'resource = "bench/r{n}/{{id}}"',
        ]
    path = folder / "gateway.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def probe_rounds(
    deployment: Any,
    control_url: str,
    playbook: str,
    profile: Any,
    scenarios: Sequence[Any],
    rounds: int,
    *,
    audience: str,
    details: list[dict[str, Any]] | None = None,
) -> tuple[list[float], Counter[str]]:
    """Run ``scenarios`` ``rounds`` times with credentials from the home: the wall time
    of each run, and every outcome seen."""
    from zerolane.cli.probe_home import HomeSource
    from zerolane.probe.context import ProbeContext
    from zerolane.probe.runner import run
    from zerolane.probe.wire import Wire

    walls: list[float] = []
    outcomes: Counter[str] = Counter()
    for _ in range(rounds):
        source = HomeSource(
            deployment, control_url, playbook, audience=[audience], authorization_details=details
        )
        context = ProbeContext(profile, source, Wire())
        started = time.perf_counter()
        report = run(scenarios, context)
        walls.append(time.perf_counter() - started)
        context.close()
        context.wire.close()
        outcomes.update(r.outcome.value for r in report.results)
    return walls, outcomes


def measure(routes: int, rounds: int, folder: Path) -> tuple[list[float], Counter[str], int]:
    from zerolane.audit.events import Actor
    from zerolane.cli.background import BackgroundServer, free_port
    from zerolane.cli.gateway import BackgroundGateway, build_app
    from zerolane.gateway.config import load_gateway_config
    from zerolane.probe.profile import Call, TargetProfile
    from zerolane.probe.scenarios import CATALOG
    from zerolane.server.deployment import Deployment, init_home
    from zerolane.tasks.playbooks import parse_playbook

    home = folder / f"home-{routes}"
    deployment, _ = init_home(home, TD)
    playbook = {
        "name": "probe",
        "description": "What the probe may do.",
        "actions": ["read"],
        "resources": ["bench/**"],
        "destinations": ["bench.internal"],
        "data_ceiling": "internal",
        "max_ttl": "15m",
        "max_calls": 100000,
        "openers": {"spiffe_ids": [f"spiffe://{TD}/zerolane/*"]},
        "delegable": True,
        "max_depth": 1,
    }
    deployment.playbooks.apply(parse_playbook(playbook, "bench"), Actor("admin", "bench"))
    scenarios = [s for s in CATALOG if s.surface != "mcp"]
    with echo_upstream(free_port()) as upstream:
        port = free_port()
        config = load_gateway_config(gateway_toml(folder, port, upstream, routes))
        gateway_deployment = Deployment.open(home)
        app = build_app(config, gateway_deployment)
        last = f"/bench/r{routes - 1}/q3"
        profile = TargetProfile(
            f"http://127.0.0.1:{port}",
            Call("GET", last),
            Call("DELETE", "/bench/r0/q3"),
            echo=Call("GET", last),
        )
        with BackgroundServer(deployment) as control, BackgroundGateway(app, port=port):
            walls, outcomes = probe_rounds(
                deployment, control.url, "probe", profile, scenarios, rounds, audience=AUDIENCE
            )
        gateway_deployment.close()
    deployment.close()
    return walls, outcomes, len(scenarios)


def measure_tools(tools: int, rounds: int, folder: Path) -> tuple[list[float], Counter[str], int]:
    import uvicorn

    from zerolane.audit.events import Actor
    from zerolane.cli.background import BackgroundServer, free_port
    from zerolane.cli.gateway import uvicorn_config
    from zerolane.cli.mcp_gateway import enforcement_of
    from zerolane.gateway.mcp import create_gateway_app, parse_gateway_config
    from zerolane.probe.profile import Call, McpProfile, TargetProfile
    from zerolane.probe.scenarios import CATALOG
    from zerolane.server.deployment import init_home
    from zerolane.tasks.playbooks import parse_playbook

    deployment, _ = init_home(folder / f"mcp-home-{tools}", TD)
    playbook = {
        "name": "probe-mcp",
        "description": "Read reports through the MCP gateway; delegate once.",
        "actions": ["mcp:tools/read_report", "mcp:tools/delete_report"],
        "resources": ["mcp/tools/*"],
        "destinations": [f"reports.{TD}"],
        "data_ceiling": "confidential",
        "max_ttl": "15m",
        "max_calls": 1000,
        "openers": {"spiffe_ids": [f"spiffe://{TD}/zerolane/*"]},
        "delegable": True,
        "max_depth": 1,
    }
    deployment.playbooks.apply(parse_playbook(playbook, "bench"), Actor("admin", "bench"))
    details = [{"type": "zerolane_task", "actions": ["mcp:tools/read_report"]}]
    port = free_port()
    server = {
        "name": "tools",
        "command": sys.executable,
        "args": [str(SAMPLE), "--extra-tools", str(tools)],
        "destination": f"reports.{TD}",
    }
    with BackgroundServer(deployment) as control:
        config = parse_gateway_config(
            {
                "listen": {"host": "127.0.0.1", "port": port},
                "public_url": f"http://127.0.0.1:{port}",
                "authorization_servers": [control.url],
                "servers": [server],
            }
        )
        json_rpc = (
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        )
        mcp = McpProfile("/mcp", "read_report", "delete_report", {"name": "q3"}, {"name": "q3"})
        allowed = Call("POST", config.path, body=INITIALIZE, headers=json_rpc)
        profile = TargetProfile(config.public_url, allowed, mcp=mcp)
        app = create_gateway_app(config, enforcement_of(deployment))
        served = uvicorn.Server(uvicorn_config(app, config.host, config.port, "warning"))
        thread = threading.Thread(target=served.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while not served.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the MCP gateway did not start")
            time.sleep(0.05)
        try:
            walls, outcomes = probe_rounds(
                deployment,
                control.url,
                "probe-mcp",
                profile,
                CATALOG,
                rounds,
                audience=config.audience,
                details=details,
            )
        finally:
            served.should_exit = True
            thread.join(timeout=30)
    deployment.close()
    return walls, outcomes, len(CATALOG)


def table(label: str, rows: list[tuple[int, float, int, Counter[str]]]) -> None:
    base = rows[0][1]
    print(f"| {label} | scenarios | wall s (median) | ratio | ms per scenario | outcomes |")
    print("| ---: | ---: | ---: | ---: | ---: | --- |")
    for size, wall, count, outcomes in rows:
        shown = ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items()))
        print(
            f"| {size:,} | {count} | {wall:.2f} | {wall / base:.2f}x | "
            f"{wall / count * 1000:.0f} | {shown} |"
        )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--routes", type=int, nargs="*", default=[10, 100, 1000])
    parser.add_argument("--tools", type=int, nargs="*", default=[10, 100, 1000])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.routes:
            rows = []
            for routes in args.routes:
                walls, outcomes, count = measure(routes, args.rounds, Path(tmp))
                rows.append((routes, statistics.median(walls), count, outcomes))
            table("routes", rows)
        if args.tools:
            rows = []
            for tools in args.tools:
                walls, outcomes, count = measure_tools(tools, args.rounds, Path(tmp))
                rows.append((tools, statistics.median(walls), count, outcomes))
            table("tools", rows)


if __name__ == "__main__":
    main()
