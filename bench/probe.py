"""How long ``zerolane probe`` takes against a local deployment, and how that grows
with the target's size (issue 14's benchmark).

A zerolane home, its control plane and an HTTP gateway in front of the echo upstream
(``tests/gateway/echo_upstream.py``), all on loopback; the gateway holds ``N`` routes
(N = 10, 100, 1,000: ``--routes``). The probe runs every HTTP scenario of its catalog
(the MCP ones need an MCP endpoint: not in this deployment, so not applicable) with
credentials from the home, as ``zerolane probe`` would, ``--rounds`` times per size.
The table shows the median wall time per size and its ratio to the smallest size,
measured in the same run, and the time per scenario.

    .venv/bin/python bench/probe.py --routes 10 100 1000 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
ECHO = ROOT / "tests" / "gateway" / "echo_upstream.py"
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


def measure(routes: int, rounds: int, folder: Path) -> tuple[list[float], Counter[str], int]:
    from zerolane.audit.events import Actor
    from zerolane.cli.background import BackgroundServer, free_port
    from zerolane.cli.gateway import BackgroundGateway, build_app
    from zerolane.cli.probe_home import HomeSource
    from zerolane.gateway.config import load_gateway_config
    from zerolane.probe.context import ProbeContext
    from zerolane.probe.profile import Call, TargetProfile
    from zerolane.probe.runner import run
    from zerolane.probe.scenarios import CATALOG
    from zerolane.probe.wire import Wire
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
    walls: list[float] = []
    outcomes: Counter[str] = Counter()
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
            for _ in range(rounds):
                source = HomeSource(deployment, control.url, "probe", audience=[AUDIENCE])
                context = ProbeContext(profile, source, Wire())
                started = time.perf_counter()
                report = run(scenarios, context)
                walls.append(time.perf_counter() - started)
                context.close()
                context.wire.close()
                outcomes.update(r.outcome.value for r in report.results)
        gateway_deployment.close()
    deployment.close()
    return walls, outcomes, len(scenarios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for routes in args.routes:
            walls, outcomes, count = measure(routes, args.rounds, Path(tmp))
            rows.append((routes, statistics.median(walls), count, outcomes))
    base = rows[0][1]
    print("| routes | scenarios | wall s (median) | ratio | ms per scenario | outcomes |")
    print("| ---: | ---: | ---: | ---: | ---: | --- |")
    for routes, wall, count, outcomes in rows:
        shown = ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items()))
        print(
            f"| {routes:,} | {count} | {wall:.2f} | {wall / base:.2f}x | "
            f"{wall / count * 1000:.0f} | {shown} |"
        )


if __name__ == "__main__":
    main()
