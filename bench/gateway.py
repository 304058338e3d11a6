"""HTTP requests per second: direct to an upstream, through a bare aiohttp proxy and through
the zerolane gateway, same run; then an MCP ``tools/call`` direct vs through the MCP gateway.

    .venv/bin/python bench/gateway.py [--seconds 5] [--light-seconds 3] [--concurrency 16]
        [--tasks 16] [--state 100,1000,100000] [--state-seconds 3] [--mcp-calls 300]
        [--mcp-opens 6] [--mcp-lists 6] [--mcp-rounds 3] [--mcp-tools 1000]
        [--mcp-servers 100] [--mcp-profile DIR]
        [--only all|http|mcp] [--no-mcp] [--audit-mode sync|async]

    .venv/bin/python bench/gateway.py --only mcp   # only the MCP part (about 2 minutes)

Every server and every load generator is its own process (all on this machine's cores):
  upstream     a minimal aiohttp app: ``GET /api/reports/{id}`` answers a small JSON object
  bare proxy   an aiohttp pass-through proxy (server + one keep-alive ClientSession): the
               baseline, the least any forwarding hop costs in Python
  gateway      ``zerolane gateway run`` over a home holding one task that may read reports:
               per request the task token, a DPoP proof, the task's state and budget, the
               Cedar policies, an atomic call spend, a durable audit event, an HMAC API key
               minted for the upstream, then the forward
  load         an aiohttp client process: ``--concurrency`` keep-alive connections for
               ``--seconds`` (throughput), then one connection for ``--light-seconds``
               (latency at light load). For the gateway each request carries the task token
               and a proof signed for it with the agent's key (RFC 9449 proofs are one-time,
               so a fixed header replay, as wrk would send, is refused). The proofs of a
               phase are signed before it starts (3,000 a second of the phase, valid for
               the proofs' 60 s window): signing is the agent's cost, and on two cores
               signing during the phase would take CPU from the server under test.
The gateway is loaded twice: every connection under one task (its requests race for
the same call budget, a compare-and-set on one row), then connection i under task
i mod ``--tasks`` (independent tasks, as many agents would be).
CPU microseconds per request: user + system time of the server process (all its threads,
from /proc/<pid>/stat) over the throughput phase, divided by the requests made.
Then the gateway (``--tasks`` tasks busy) over homes holding 10x and 1000x more tasks and
audit events, and an MCP ``tools/call`` (the sample server over streamable HTTP) direct
vs through ``zerolane mcp-gateway run``, one call at a time, by the MCP SDK's client in a
separate process (through the gateway it signs a DPoP proof per request):
  SSE / JSON   the sample server answering each POST as an SSE stream (its default; the
               SDK's client then drops its connection) and as JSON (``--json``), each
               direct and through a gateway of one server: the added p50 as a multiple
               of the direct p50 (issue 12 item 6: at most 0.6x)
  scale        through the gateway to a JSON upstream of ``--mcp-tools`` tools
               (``--extra-tools``), and with ``--mcp-servers`` servers configured (all
               the one JSON sample server, names and prefixes ``s001``..; the task calls
               the last, ``tools``): p50 and gateway CPU per call against the 3-tool,
               1-server row
  sessions     per row, sessions opened (``initialize``: through the gateway, one
               upstream session per configured server) and closed, and ``tools/list``
               (the gateway lists every upstream and asks the policy engine per tool)
All servers and gateways run for the whole part (each gateway on its own port, under its
own MCP task); the rows are measured in ``--mcp-rounds`` interleaved rounds and pooled.
``--mcp-profile DIR`` runs each MCP gateway under cProfile (``DIR/<row>.prof``; main
thread; wall times, so not for the timed numbers).
``--audit-mode async`` writes ``[audit] mode = "async"`` into the homes' configuration.
``--only http`` (or ``--no-mcp``) leaves the MCP part out; ``--only mcp`` runs only it (one
home, the first ``--state`` size) and checks that every allowed MCP call is one audited
decision (and counts those holding the call's arguments).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Generator, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, cast

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SAMPLE_MCP = ROOT / "examples" / "mcp" / "sample_server.py"
TD = "bench.example"
AGENT = f"spiffe://{TD}/agents/reader"
AUDIENCE = "urn:zerolane:bench:gateway"
DESTINATION = f"reports.{TD}"
MCP_DESTINATION = f"mcp.{TD}"
#: the sample server's own tools (``--extra-tools`` adds to them)
SAMPLE_TOOLS = ("read_report", "delete_report", "post_message")
PATH = "/api/reports/q3"
BODY = json.dumps({"quarter": "Q3", "revenue": 1_410_000, "margin": 0.22}).encode()
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"}
    | {"trailer", "proxy-authenticate", "proxy-authorization", "content-length", "host"}
)
PLAYBOOK: dict[str, Any] = {
    "name": "bench-reader",
    "description": "Read quarterly reports through the gateways.",
    "actions": ["read", "mcp:tools/read_report"],
    "resources": ["reports/*", "mcp/tools/*"],
    "destinations": [DESTINATION, MCP_DESTINATION],
    "data_ceiling": "confidential",
    "max_ttl": "2h",
    "max_calls": 1_000_000,
    "openers": {"spiffe_ids": [f"spiffe://{TD}/agents/*"]},
}
INTENT = "Summarize the quarter's reports"
#: proofs signed ahead per second of a phase (more than one gateway process answers)
PROOF_RATE = 3000


# --- the processes: upstream, bare proxy, load generators ----------------------------------


def serve_upstream(port: int) -> None:
    from aiohttp import web

    async def report(_: web.Request) -> web.Response:
        return web.Response(body=BODY, content_type="application/json")

    app = web.Application()
    app.router.add_get("/api/reports/{id}", report)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def serve_proxy(port: int, target: str) -> None:
    """A pass-through proxy: forwards method, path, query, headers and body; nothing else."""
    import aiohttp
    from aiohttp import web

    session: dict[str, aiohttp.ClientSession] = {}

    async def start(_: web.Application) -> None:
        connector = aiohttp.TCPConnector(limit=100)
        session["s"] = aiohttp.ClientSession(connector=connector, auto_decompress=False)

    async def stop(_: web.Application) -> None:
        await session["s"].close()

    async def forward(request: web.Request) -> web.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        body = await request.read()
        async with session["s"].request(
            request.method,
            target + request.raw_path,
            headers=headers,
            data=body or None,
            allow_redirects=False,
        ) as upstream:
            payload = await upstream.read()
            out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
            return web.Response(status=upstream.status, headers=out, body=payload)

    app = web.Application()
    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_route("*", "/{tail:.*}", forward)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run_load(spec: dict[str, Any]) -> dict[str, Any]:
    """Throughput with ``concurrency`` connections, then latency with one (role ``load``).

    For the gateway, each phase first signs its proofs (``proof_rate`` a second of the
    phase, per connection's task), then sends them: signing is the agent's cost and, on
    a machine of two cores, signing during the phase would take CPU from the server
    under test. A connection stops when its task's proofs run out (reported as
    ``ran_dry``; the rate is still answers over elapsed time)."""
    import aiohttp

    sign = None
    if spec.get("key_pem"):
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        from zerolane.tokens.rfc9449 import make_proof

        key = load_pem_private_key(spec["key_pem"].encode(), password=None)
        tokens, public = spec["tokens"], spec["public_url"] + PATH

        def sign(token: str) -> dict[str, str]:
            proof = make_proof(key, method="GET", url=public, access_token=token)  # type: ignore[arg-type]
            return {"Authorization": f"DPoP {token}", "DPoP": proof}

    url = spec["url"] + PATH

    def presign(concurrency: int, seconds: float) -> tuple[list[list[dict[str, str]]], float]:
        """One pool of signed headers per task; connection i draws from task i mod K."""
        if sign is None:
            return [], 0.0
        used = min(concurrency, len(tokens))
        per_task = int(spec["proof_rate"] * seconds / used) + 8
        started = time.perf_counter()
        pools = [[sign(tokens[k]) for _ in range(per_task)] for k in range(used)]
        return pools, time.perf_counter() - started

    async def phase(concurrency: int, seconds: float) -> dict[str, Any]:
        latencies: list[float] = []
        statuses: dict[str, int] = {}
        dry = [0]
        pools, signing = presign(concurrency, seconds)
        connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
        async with aiohttp.ClientSession(connector=connector) as session:
            for _ in range(3):  # warm up: connections, first decision, caches
                headers = pools[0].pop() if pools else None
                async with session.get(url, headers=headers) as r:
                    await r.read()
            deadline = time.perf_counter() + seconds

            async def worker(number: int) -> None:
                pool = pools[number % len(pools)] if pools else None
                while time.perf_counter() < deadline:
                    headers = None
                    if pool is not None:
                        if not pool:
                            dry[0] += 1
                            return
                        headers = pool.pop()
                    started = time.perf_counter()
                    async with session.get(url, headers=headers) as response:
                        await response.read()
                    latencies.append(time.perf_counter() - started)
                    key = str(response.status)
                    statuses[key] = statuses.get(key, 0) + 1

            cpu0, usage0 = cpu_seconds(spec["server_pid"]), resource.getrusage(resource.RUSAGE_SELF)
            began = time.perf_counter()
            await asyncio.gather(*(worker(i) for i in range(concurrency)))
            elapsed = time.perf_counter() - began
            cpu1, usage1 = cpu_seconds(spec["server_pid"]), resource.getrusage(resource.RUSAGE_SELF)
        client_cpu = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
        return {
            "count": len(latencies),
            "elapsed": elapsed,
            "ok": statuses.get("200", 0),
            "statuses": statuses,
            "p50": percentile(latencies, 0.50),
            "p99": percentile(latencies, 0.99),
            "server_cpu": cpu1 - cpu0,
            "client_cpu": client_cpu,
            "signing": signing,
            "signed": sum(len(pool) for pool in pools),
            "ran_dry": dry[0],
        }

    result: dict[str, Any] = {"load": asyncio.run(phase(spec["concurrency"], spec["seconds"]))}
    result["light"] = asyncio.run(phase(1, spec["light_seconds"]))
    return result


def run_mcp_load(spec: dict[str, Any]) -> dict[str, Any]:
    """MCP sessions of the SDK's client (role ``mcp-load``): ``opens`` sessions opened
    (``initialize``) and closed one after the other, timed; then one session that lists
    the tools ``lists`` times and makes ``calls`` sequential ``tools/call``, timed one by
    one. CPU: the server process's (``server_pid``), the upstream's behind it
    (``upstream_pid``, when given) and this process's own."""
    from contextlib import AsyncExitStack

    import anyio
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    auth = None
    if spec.get("key_pem"):
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        from zerolane.tokens.rfc9449 import make_proof

        key = load_pem_private_key(spec["key_pem"].encode(), password=None)
        token = spec["tokens"][0]

        class Dpop(httpx2.Auth):
            def auth_flow(
                self, request: httpx2.Request
            ) -> Generator[httpx2.Request, httpx2.Response]:
                proof = make_proof(
                    key,  # type: ignore[arg-type]
                    method=request.method,
                    url=str(request.url),
                    access_token=token,
                )
                request.headers["Authorization"] = f"DPoP {token}"
                request.headers["DPoP"] = proof
                yield request

        auth = Dpop()
    pids = {"server": spec["server_pid"], "upstream": spec.get("upstream_pid")}

    def cpu() -> dict[str, float]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        out = {name: cpu_seconds(pid) for name, pid in pids.items() if pid}
        return {**out, "client": usage.ru_utime + usage.ru_stime}

    def spent(before: dict[str, float]) -> dict[str, float]:
        """CPU seconds by process since ``before``."""
        after = cpu()
        return {name: after[name] - before[name] for name in before}

    async def session(stack: AsyncExitStack, http: httpx2.AsyncClient) -> ClientSession:
        read, write = await stack.enter_async_context(
            streamable_http_client(spec["url"], http_client=http)
        )
        client = await stack.enter_async_context(ClientSession(read, write))
        protocol.append((await client.initialize()).protocol_version)
        return client

    protocol: list[str] = []

    async def calls() -> dict[str, Any]:
        # one HTTP client for every session, as an agent would keep (making one loads
        # the CA bundle: 25-100 ms, the client's own start, not a session's)
        async with httpx2.AsyncClient(auth=auth, timeout=60) as http:
            return await measure(http)

    async def measure(http: httpx2.AsyncClient) -> dict[str, Any]:
        opens: list[float] = []
        closes: list[float] = []
        before = cpu()
        for _ in range(spec.get("opens", 0)):
            started = time.perf_counter()
            async with AsyncExitStack() as stack:
                await session(stack, http)
                opened = time.perf_counter()
            closes.append(time.perf_counter() - opened)
            opens.append(opened - started)
        open_cpu = spent(before)
        latencies: list[float] = []
        listings: list[float] = []
        async with AsyncExitStack() as stack:
            client = await session(stack, http)
            for _ in range(spec.get("lists", 0)):
                started = time.perf_counter()
                listed = await client.list_tools()
                listings.append(time.perf_counter() - started)
            for _ in range(5):
                await client.call_tool("read_report", {"name": "q3"})
            before = cpu()
            for _ in range(spec["calls"]):
                started = time.perf_counter()
                result = await client.call_tool("read_report", {"name": "q3"})
                latencies.append(time.perf_counter() - started)
                if result.is_error:
                    raise SystemExit(f"tools/call failed: {result.content}")
            call_cpu = spent(before)
        return {
            "latencies": latencies,
            "cpu": call_cpu,
            "opens": opens,
            "closes": closes,
            "open_cpu": open_cpu,
            "listings": listings,
            "listed": len(listed.tools) if listings else 0,
            "protocol": protocol[-1],
        }

    return anyio.run(calls)


ROLES = {"upstream", "proxy", "load", "mcp-load"}


def role_main(role: str, argv: list[str]) -> None:
    if role == "upstream":
        serve_upstream(int(argv[0]))
    elif role == "proxy":
        serve_proxy(int(argv[0]), argv[1])
    else:
        spec = json.loads(sys.stdin.read())
        out = run_load(spec) if role == "load" else run_mcp_load(spec)
        print(json.dumps(out))


# --- the orchestration -----------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url}: the server exited with {process.returncode}")
        try:
            conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=1)
            conn.request("GET", parts.path or "/")
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not start")


@contextmanager
def process(argv: list[str], ready_url: str) -> Iterator[subprocess.Popen[bytes]]:
    # stderr to a file, not a pipe nobody reads while the server runs: a server that
    # logs more than a pipe holds would block on its next line
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log)
        try:
            wait_http(ready_url, proc)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.seek(0)
            err = log.read().decode(errors="replace")
            if proc.returncode not in (0, -15) or "Traceback" in err or "ERROR" in err:
                sys.stderr.write(f"--- {argv[2:4]} logged:\n{err[-3000:]}\n")


def role(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Run a load role in a fresh process and return what it measured."""
    done = subprocess.run(
        [sys.executable, __file__, name],
        input=json.dumps(spec).encode(),
        capture_output=True,
        check=False,
        timeout=600,
    )
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr.decode(errors='replace')[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@dataclasses.dataclass
class Home:
    path: Path
    key_pem: str
    tokens: list[str]  # HTTP tasks, all of one agent
    task_ids: list[str]
    mcp_tokens: list[str]  # MCP tasks, one per MCP gateway's audience
    mcp_task_ids: list[str]


def make_home(folder: Path, mcp_audiences: list[str], state: int, tasks: int) -> Home:
    """A home with the bench playbook, one agent, ``tasks`` HTTP tasks and an MCP task
    for each MCP audience; plus ``state`` extra tasks and ``state`` extra audit events
    already stored."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from zerolane.audit.events import Actor
    from zerolane.identity.service import AttestRequest
    from zerolane.server.deployment import init_home
    from zerolane.tasks.lifecycle import OpenRequest
    from zerolane.tasks.playbooks import parse_playbook
    from zerolane.tokens.rfc9449 import make_proof, proof_jwk

    admin = Actor("admin", "bench")
    home = folder / "home"
    deployment, _ = init_home(home, TD)
    try:
        deployment.registry.register(AGENT, selectors=[], owner=None, actor=admin)
        deployment.playbooks.apply(parse_playbook(PLAYBOOK, "bench"), admin)
        key = ec.generate_private_key(ec.SECP256R1())
        join = deployment.join_tokens.create(AGENT, ttl=600, actor=admin).token
        svid = deployment.identity.attest(
            AttestRequest(evidence={"join_token": join}, public_jwk=proof_jwk(key), ttl=7200)
        ).token
        url = "http://bench.local/v1/tasks"

        def open_task(audience: str, actions: list[str]) -> tuple[str, str]:
            proof = make_proof(key, method="POST", url=url, access_token=svid)
            caller = deployment.authenticator.workload(svid, proof, method="POST", url=url)
            details = [{"type": "zerolane_task", "actions": actions}]
            opened = deployment.lifecycle.open(
                caller,
                OpenRequest(
                    intent=INTENT,
                    playbook=PLAYBOOK["name"],
                    authorization_details=details,
                    ttl=7200,
                    audience=[audience],
                ),
            )
            return opened.task.task_id, opened.token

        opened = [open_task(AUDIENCE, ["read"]) for _ in range(tasks)]
        mcp = [open_task(audience, ["mcp:tools/read_report"]) for audience in mcp_audiences]
        seed(home, deployment, state)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
    finally:
        deployment.close()
    return Home(
        home,
        pem,
        [t for _, t in opened],
        [i for i, _ in opened],
        [t for _, t in mcp],
        [i for i, _ in mcp],
    )


def seed(home: Path, deployment: Any, count: int) -> None:
    """``count`` ended tasks (one transaction, straight into the table) and ``count`` audit
    events (through the audit log, in chunks, so the chain stays valid)."""
    from zerolane.audit.events import Actor
    from zerolane.store.records import TaskRecord
    from zerolane.types import Outcome, TaskState

    if count <= 0:
        return
    template = deployment.stores.list_tasks(limit=1)[0]
    columns = [f.name for f in dataclasses.fields(TaskRecord)]
    now = time.time()

    def row(i: int) -> tuple[object, ...]:
        record = dataclasses.replace(
            template,
            task_id=f"tsk_seed{i:08d}",
            token_jti=f"seed{i:08d}",
            created_at=now - 86_400 + i * 0.5,
            expires_at=now - 86_000 + i * 0.5,
            state=TaskState.COMPLETED,
            calls_used=i % 7,
            ended_at=now - 86_200 + i * 0.5,
            end_reason="completed",
        )
        values = {
            **dataclasses.asdict(record),
            "audience": json.dumps(list(record.audience)),
            "state": record.state.value,
        }
        return tuple(values[c] for c in columns)

    path = home / deployment.config.store_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA busy_timeout=10000")
        db.executemany(
            f"INSERT INTO tasks ({', '.join(columns)}) "  # noqa: S608
            f"VALUES ({', '.join('?' for _ in columns)})",
            (row(i) for i in range(count)),
        )
    db.close()
    audit = deployment.audit
    actor = Actor("workload", AGENT)
    for start in range(0, count, 5000):
        audit.record_all(
            [
                audit.event(
                    "decision",
                    actor,
                    f"tsk_seed{i:08d}",
                    Outcome.SUCCESS,
                    details={"decision": "allow", "resource": f"reports/r{i}"},
                )
                for i in range(start, min(count, start + 5000))
            ]
        )


def set_audit_mode(home: Home, mode: str) -> None:
    from zerolane.config import AuditConfig, load_config, render_config

    audit = AuditConfig("async" if mode == "async" else "sync")
    config = dataclasses.replace(load_config(home.path), audit=audit)
    (home.path / "zerolane.toml").write_text(render_config(config))


def gateway_config(folder: Path, port: int, upstream: int) -> Path:
    key = folder / "reports.key"
    key.write_bytes(os.urandom(32).hex().encode() + b"\n")
    key.chmod(0o600)
    path = folder / "gateway.toml"
    path.write_text(
        f"""
public_url = "http://127.0.0.1:{port}"
audience = "{AUDIENCE}"
metrics = false

[listen]
host = "127.0.0.1"
port = {port}

[limits]
upstream_connections = 100

[[upstreams]]
name = "reports"
base_url = "http://127.0.0.1:{upstream}/api"
prefix = "/api"
destination = "{DESTINATION}"
credential = {{ type = "hmac", key_file = "reports.key", header = "X-Api-Key" }}

[[upstreams.routes]]
method = "GET"
path = "/reports/{{id}}"
action = "read"
resource = "reports/{{id}}"
"""
    )
    return path


def mcp_config(
    folder: Path, port: int, upstream_url: str, servers: int = 1, name: str = "mcp"
) -> Path:
    """The MCP gateway's configuration: ``servers`` entries, all pointing at the one
    upstream; the task calls server ``tools`` (the last, no prefix), the others are named
    ``s001``.. with their name as prefix."""
    import tomli_w

    entries: list[dict[str, str]] = [
        {"name": f"s{n:03d}", "prefix": f"s{n:03d}_", "url": upstream_url}
        for n in range(1, servers)
    ]
    entries.append({"name": "tools", "url": upstream_url})
    doc = {
        "listen": {"host": "127.0.0.1", "port": port},
        "public_url": f"http://127.0.0.1:{port}",
        "authorization_servers": ["http://127.0.0.1:9/"],
        "servers": [{**entry, "destination": MCP_DESTINATION} for entry in entries],
    }
    path = folder / f"mcp-gateway-{name}.toml"
    path.write_text(tomli_w.dumps(doc))
    return path


@contextmanager
def gateway(home: Home, config: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    argv = [sys.executable, "-m", "zerolane", "gateway", "run", "--config", str(config)]
    argv += ["--home", str(home.path), "--port", str(port)]
    with process(argv, f"http://127.0.0.1:{port}/healthz") as proc:
        yield proc


def load_spec(
    url: str,
    pid: int,
    concurrency: int,
    seconds: float,
    light: float,
    home: Home | None,
    tasks: int = 1,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "url": url,
        "server_pid": pid,
        "concurrency": concurrency,
        "seconds": seconds,
        "light_seconds": light,
        "proof_rate": PROOF_RATE,
    }
    if home is not None:
        spec.update(key_pem=home.key_pem, tokens=home.tokens[:tasks], public_url=url)
    return spec


def check_statuses(name: str, phase: dict[str, Any]) -> None:
    """Refusals under load (403 ``task.contention`` when one task's concurrent requests
    keep losing the compare-and-set) are reported; more than 5 % means a broken setup."""
    if phase["ok"] < 0.95 * phase["count"]:
        raise SystemExit(f"{name}: too few requests got 200: {phase['statuses']}")


def rate(phase: dict[str, Any]) -> float:
    """Requests answered 200 per second."""
    return float(phase["ok"]) / float(phase["elapsed"])


def refused(phase: dict[str, Any]) -> int:
    return int(phase["count"]) - int(phase["ok"])


def signing_cost(seconds: float = 1.0) -> float:
    """Microseconds to sign one DPoP proof with a P-256 key (the client's cost)."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from zerolane.tokens.rfc9449 import make_proof

    key = ec.generate_private_key(ec.SECP256R1())
    token = "x" * 600
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        make_proof(key, method="GET", url="http://127.0.0.1:8800" + PATH, access_token=token)
        count += 1
    return (time.perf_counter() - start) / count * 1e6


def audited(home: Home) -> tuple[int, int, bool]:
    """(allowed decisions audited for the HTTP tasks, calls they spent, chain verified)."""
    from zerolane.server.deployment import Deployment

    deployment = Deployment.open(home.path)
    try:
        allowed = 0
        for record in deployment.audit.iter_records(page=5000):
            if record.kind == "decision" and record.outcome == "success":
                allowed += any(task_id in record.body for task_id in home.task_ids)
        spent = 0
        for task_id in home.task_ids:
            task = deployment.stores.get_task(task_id)
            spent += task.calls_used if task else -(10**9)
        count, broken = deployment.audit.verify()
        return allowed, spent, broken is None and count > 0
    finally:
        deployment.close()


def mcp_audited(home: Home) -> tuple[int, int, int, int]:
    """For the MCP tasks: (allowed decisions, of them holding the call's arguments, separate
    ``mcp.tool_call`` events, calls spent)."""
    from zerolane.audit.log import event_json
    from zerolane.server.deployment import Deployment

    deployment = Deployment.open(home.path)
    try:
        allowed = with_arguments = tool_calls = 0
        for record in deployment.audit.iter_records(page=5000):
            if not any(task_id in record.body for task_id in home.mcp_task_ids):
                continue
            event = event_json(record)
            if event["subject"] not in home.mcp_task_ids:
                continue
            if record.kind == "mcp.tool_call":
                tool_calls += 1
            elif record.kind == "decision" and record.outcome == "success":
                allowed += 1
                details = cast(dict[str, object], event["details"])
                with_arguments += details.get("arguments") == {"name": "q3"}
        spent = 0
        for task_id in home.mcp_task_ids:
            task = deployment.stores.get_task(task_id)
            spent += task.calls_used if task else -(10**9)
        return allowed, with_arguments, tool_calls, spent
    finally:
        deployment.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="throughput phase per path")
    parser.add_argument("--light-seconds", type=float, default=3.0, help="latency phase per path")
    parser.add_argument("--concurrency", type=int, default=16, help="connections under load")
    parser.add_argument("--state", default="100,1000,100000", help="tasks and events (first=base)")
    parser.add_argument("--state-seconds", type=float, default=3.0)
    parser.add_argument("--mcp-calls", type=int, default=300, help="timed MCP calls per row")
    parser.add_argument(
        "--mcp-opens", type=int, default=6, help="MCP sessions opened and closed per row, timed"
    )
    parser.add_argument("--mcp-lists", type=int, default=6, help="timed tools/list per row")
    parser.add_argument(
        "--mcp-rounds", type=int, default=3, help="rounds over the MCP rows (samples split)"
    )
    parser.add_argument(
        "--mcp-tools", type=int, default=1000, help="tools on the large upstream (0: no row)"
    )
    parser.add_argument(
        "--mcp-servers", type=int, default=100, help="servers configured in the many-servers row"
    )
    parser.add_argument(
        "--mcp-profile", type=Path, help="run each MCP gateway under cProfile, files in this dir"
    )
    parser.add_argument("--tasks", type=int, default=16, help="tasks in the many-tasks row")
    parser.add_argument(
        "--only", choices=("all", "http", "mcp"), default="all", help="which part to run"
    )
    parser.add_argument("--no-mcp", action="store_true", help="the same as --only http")
    parser.add_argument(
        "--audit-mode", choices=("sync", "async"), default="sync", help="[audit] mode of the homes"
    )
    args = parser.parse_args()
    if args.no_mcp:
        args.only = "http"
    started = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="zl-bench-gw-"))
    sizes = [int(s) for s in args.state.split(",")]
    if args.only == "mcp":
        sizes = sizes[:1]  # one home, the MCP gateway's
    mcp_ports = {name: free_port() for name in mcp_gateways(args)}
    mcp_audiences = [f"http://127.0.0.1:{port}/mcp" for port in mcp_ports.values()]

    homes: dict[int, Home] = {}
    for size in sizes:
        seeding = time.perf_counter()
        (folder / str(size)).mkdir()
        homes[size] = make_home(folder / str(size), mcp_audiences, size, args.tasks)
        if args.audit_mode != "sync":  # the default: leave the config as init wrote it
            set_audit_mode(homes[size], args.audit_mode)
        print(f"home with {size} extra tasks and events in {time.perf_counter() - seeding:.1f} s")
    base = homes[sizes[0]]

    if args.only != "mcp":
        sign_us = signing_cost()
        rows, state_rows = run_http(args, folder, homes, sizes)
        allowed, spent, chain_ok = audited(base)
        report(args, rows, state_rows, sizes, sign_us)
        print(
            f"\nbase home: {allowed} allowed decisions audited for its HTTP tasks, {spent} "
            f"calls spent, audit chain verified: {chain_ok}"
        )
        if allowed != spent or not chain_ok:
            raise SystemExit("every allowed request must have exactly one audit event")
    if args.only != "http":
        mcp = run_mcp(args, folder, base, mcp_ports)
        report_mcp(args, mcp)
        allowed, with_arguments, tool_calls, spent = mcp_audited(base)
        print(
            f"MCP tasks: {allowed} allowed decisions audited ({with_arguments} holding the "
            f"call's arguments), {tool_calls} separate mcp.tool_call events, {spent} calls spent"
        )
        if allowed != spent:
            raise SystemExit("every allowed MCP call must have exactly one decision event")
    print(f"(total {time.perf_counter() - started:.0f} s)")


def run_http(
    args: argparse.Namespace, folder: Path, homes: dict[int, Home], sizes: list[int]
) -> tuple[dict[str, dict[str, Any]], dict[int, dict[str, Any]]]:
    """Direct, bare proxy and gateway rows, then the gateway over each home (state rows)."""
    up_port, proxy_port, gw_port = (free_port() for _ in range(3))
    gw_url = f"http://127.0.0.1:{gw_port}"
    base = homes[sizes[0]]
    config = gateway_config(folder, gw_port, up_port)
    me = [sys.executable, __file__]
    rows: dict[str, dict[str, Any]] = {}
    state_rows: dict[int, dict[str, Any]] = {}
    upstream_url = f"http://127.0.0.1:{up_port}"
    proxy_url = f"http://127.0.0.1:{proxy_port}"
    with process([*me, "upstream", str(up_port)], upstream_url + PATH) as upstream:
        with process([*me, "proxy", str(proxy_port), upstream_url], proxy_url + PATH) as proxy:
            targets = [
                ("direct to the upstream", upstream_url, upstream.pid),
                ("bare aiohttp proxy (baseline)", proxy_url, proxy.pid),
            ]
            for name, url, pid in targets:
                spec = load_spec(url, pid, args.concurrency, args.seconds, args.light_seconds, None)
                rows[name] = role("load", spec)
        with gateway(base, config, gw_port) as gw:
            spec = load_spec(
                gw_url, gw.pid, args.concurrency, args.seconds, args.light_seconds, base
            )
            rows["zerolane gateway (full path)"] = role("load", spec)
            spec = load_spec(gw_url, gw.pid, args.concurrency, args.seconds, 0.5, base, args.tasks)
            rows[f"  the same, over {args.tasks} tasks"] = role("load", spec)
        for size in sizes:
            with gateway(homes[size], config, gw_port) as gw:
                spec = load_spec(
                    gw_url,
                    gw.pid,
                    args.concurrency,
                    args.state_seconds,
                    1.5,
                    homes[size],
                    args.tasks,
                )
                state_rows[size] = role("load", spec)
    for name, result in [*rows.items(), *((str(s), r) for s, r in state_rows.items())]:
        check_statuses(name, result["load"])
        check_statuses(name, result["light"])
    return rows, state_rows


def report(
    args: argparse.Namespace,
    rows: dict[str, dict[str, Any]],
    state_rows: dict[int, dict[str, Any]],
    sizes: list[int],
    sign_us: float,
) -> None:
    proxy = rows["bare aiohttp proxy (baseline)"]
    direct = rows["direct to the upstream"]
    base_rate = rate(proxy["load"])
    print(
        f"\nload: {args.concurrency} connections for {args.seconds:.0f} s; light: one connection "
        f"for {args.light_seconds:.0f} s; audit mode {args.audit_mode}"
    )
    header = ("path", "req/s", "vs proxy", "p50 ms", "p99 ms", "+p50 ms", "+p99 ms", "cpu us/req")
    print("{:<34} {:>8} {:>9} {:>7} {:>7} {:>8} {:>8} {:>10} {:>8}".format(*header, "refused"))
    for name, result in rows.items():
        load, light = result["load"], result["light"]
        print(
            f"{name:<34} {rate(load):>8.0f} {rate(load) / base_rate:>8.3f}x "
            f"{light['p50'] * 1e3:>7.2f} {light['p99'] * 1e3:>7.2f} "
            f"{(light['p50'] - direct['light']['p50']) * 1e3:>8.2f} "
            f"{(light['p99'] - direct['light']['p99']) * 1e3:>8.2f} "
            f"{load['server_cpu'] / load['count'] * 1e6:>10.0f} {refused(load):>8}"
        )
    gw = rows["zerolane gateway (full path)"]
    added_p50 = (gw["light"]["p50"] - proxy["light"]["p50"]) * 1e3
    added_p99 = (gw["light"]["p99"] - proxy["light"]["p99"]) * 1e3
    print(
        f"(+p50/+p99: added to the direct path at light load; cpu: the server process; "
        f"refused: non-200 answers under load {gw['load']['statuses']})\n"
        f"gateway vs bare proxy at light load: +{added_p50:.2f} ms p50, "
        f"+{added_p99:.2f} ms p99\n"
        f"client side: signing one DPoP proof {sign_us:.0f} us (measured alone); the load "
        f"process signed each phase's proofs before it ({gw['load']['signing']:.1f} s for "
        f"the 1-task phase, not timed) and spent "
        f"{gw['load']['client_cpu'] / gw['load']['count'] * 1e6:.0f} us/request CPU during "
        f"it (direct path: "
        f"{direct['load']['client_cpu'] / direct['load']['count'] * 1e6:.0f} us/request)"
    )
    dry = {
        name: result[part]["ran_dry"]
        for name, result in rows.items()
        for part in ("load", "light")
        if result[part].get("ran_dry")
    }
    if dry:
        print(f"(connections that ran out of signed proofs before the end: {dry})")

    print(
        f"\n{'tasks + events stored (load: ' + str(args.tasks) + ' tasks)':<36} {'req/s':>8} "
        f"{'vs ' + str(sizes[0]):>9}"
        f" {'p50 ms':>7} {'cpu us/req':>10} {'refused':>8}"
    )
    first_rate = rate(state_rows[sizes[0]]["load"])
    for size in sizes:
        load, light = state_rows[size]["load"], state_rows[size]["light"]
        print(
            f"{size:<36} {rate(load):>8.0f} {rate(load) / first_rate:>8.3f}x "
            f"{light['p50'] * 1e3:>7.2f} {load['server_cpu'] / load['count'] * 1e6:>10.0f} "
            f"{refused(load):>8}"
        )


def mcp_gateways(args: argparse.Namespace) -> list[str]:
    """The MCP gateways a run starts (each on its own port, for its own MCP task)."""
    names = ["sse", "json"]
    if args.mcp_servers > 1:
        names.append("servers")
    if args.mcp_tools > len(SAMPLE_TOOLS):
        names.append("tools")
    return names


def run_mcp(
    args: argparse.Namespace, folder: Path, base: Home, ports: dict[str, int]
) -> dict[str, dict[str, Any]]:
    """The sample MCP server over streamable HTTP, called direct and through the gateway:
    answering with SSE (its default), then with JSON; then through the gateway with
    ``--mcp-tools`` tools on the server and with ``--mcp-servers`` servers configured.
    Every server and gateway runs for the whole part; the rows are measured in
    ``--mcp-rounds`` rounds, one row after the other in each round, and each row's
    samples of all rounds pooled (so a noisy moment lands on every row, not on one).
    Rows by key: ``<upstream>/<path>`` (``sse``, ``json``, ``tools``; ``direct``,
    ``gateway``) and ``servers/gateway``."""
    rounds = max(1, args.mcp_rounds)
    load = {
        "calls": -(-args.mcp_calls // rounds),
        "opens": -(-args.mcp_opens // rounds),
        "lists": -(-args.mcp_lists // rounds),
    }
    specs: dict[str, dict[str, Any]] = {}
    tokens = dict(zip(ports, base.mcp_tokens, strict=True))

    def sample(stack: ExitStack, *extra: str) -> tuple[str, int]:
        port = free_port()
        url = f"http://127.0.0.1:{port}/mcp"
        argv = [sys.executable, str(SAMPLE_MCP), "--http", "--port", str(port), *extra]
        return url, stack.enter_context(process(argv, url)).pid

    def through(stack: ExitStack, name: str, url: str, upstream: int, servers: int = 1) -> None:
        port = ports[name]
        argv = [sys.executable, "-m", "zerolane", "mcp-gateway", "run"]
        argv += ["--config", str(mcp_config(folder, port, url, servers, name))]
        argv += ["--home", str(base.path)]
        if args.mcp_profile:
            args.mcp_profile.mkdir(parents=True, exist_ok=True)
            argv[1:1] = ["-m", "cProfile", "-o", str(args.mcp_profile / f"{name}.prof")]
        gateway_url = f"http://127.0.0.1:{port}"
        gw = stack.enter_context(process(argv, f"{gateway_url}/healthz"))
        wait_ready(f"{gateway_url}/readyz", gw)
        specs[f"{name}/gateway"] = {
            "url": f"{gateway_url}/mcp",
            "server_pid": gw.pid,
            "upstream_pid": upstream,
            "key_pem": base.key_pem,
            "tokens": [tokens[name]],
        }

    with ExitStack() as stack:
        sse_url, sse = sample(stack)
        json_url, json_pid = sample(stack, "--json")
        specs["sse/direct"] = {"url": sse_url, "server_pid": sse}
        through(stack, "sse", sse_url, sse)
        specs["json/direct"] = {"url": json_url, "server_pid": json_pid}
        through(stack, "json", json_url, json_pid)
        if "servers" in ports:
            through(stack, "servers", json_url, json_pid, args.mcp_servers)
        if "tools" in ports:
            extra = str(args.mcp_tools - len(SAMPLE_TOOLS))
            tools_url, tools_pid = sample(stack, "--json", "--extra-tools", extra)
            specs["tools/direct"] = {"url": tools_url, "server_pid": tools_pid}
            through(stack, "tools", tools_url, tools_pid)
        parts: dict[str, list[dict[str, Any]]] = {key: [] for key in specs}
        for _ in range(rounds):
            for key, spec in specs.items():
                parts[key].append(role("mcp-load", {**load, **spec}))
    return {key: pooled(results) for key, results in parts.items()}


def pooled(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from its rounds: percentiles over every round's samples, CPU per call (per
    session opened and closed) in microseconds over all of them, by process."""

    def joined(name: str) -> list[float]:
        return [value for result in results for value in result[name]]

    def per(name: str, count: int) -> dict[str, float]:
        total: dict[str, float] = {}
        for result in results:
            for process_name, seconds in result[name].items():
                total[process_name] = total.get(process_name, 0.0) + seconds
        return {key: value / max(count, 1) * 1e6 for key, value in total.items()}

    latencies, opens, closes = joined("latencies"), joined("opens"), joined("closes")
    listings = joined("listings")
    return {
        "count": len(latencies),
        "p50": percentile(latencies, 0.50),
        "p99": percentile(latencies, 0.99),
        "cpu": per("cpu", len(latencies)),
        "opens": len(opens),
        "open_p50": percentile(opens, 0.50),
        "close_p50": percentile(closes, 0.50),
        "open_cpu": per("open_cpu", len(opens)),
        "lists": len(listings),
        "list_p50": percentile(listings, 0.50),
        "listed": results[0]["listed"],
        "protocol": results[0]["protocol"],
    }


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Until ``url`` answers 200 (the MCP gateway's ``/readyz``: every upstream serves)."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the gateway exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:  # noqa: S310 (loopback)
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not get ready in {timeout:.0f} s")


def report_mcp(args: argparse.Namespace, mcp: dict[str, dict[str, Any]]) -> None:
    def us(result: dict[str, Any], name: str, part: str = "cpu") -> str:
        value = result[part].get(name)
        return f"{value:.0f}" if value is not None else "-"

    print(
        f"\nMCP tools/call, {args.mcp_calls} one at a time, the SDK's client "
        f"(cpu: us per call of the gateway, the sample server, the client process)"
    )
    header = ("upstream answers", "path", "p50 ms", "p99 ms", "+p50 ms", "+p50/direct")
    print("{:<17} {:<8} {:>7} {:>7} {:>8} {:>11}".format(*header), end="")
    print(" {:>8} {:>9} {:>8}".format("gw cpu", "upstr cpu", "cli cpu"))
    added: dict[str, float] = {}
    for mode, label in (("sse", "SSE (default)"), ("json", "JSON (--json)")):
        direct = mcp[f"{mode}/direct"]
        for path in ("direct", "gateway"):
            result = mcp[f"{mode}/{path}"]
            plus = result["p50"] - direct["p50"]
            if path == "gateway":
                added[label] = plus / direct["p50"]
            server, upstream = (
                ("-", us(result, "server"))
                if path == "direct"
                else (us(result, "server"), us(result, "upstream"))
            )
            print(
                f"{label:<17} {path:<8} {result['p50'] * 1e3:>7.2f} {result['p99'] * 1e3:>7.2f} "
                f"{plus * 1e3:>8.2f} {plus / direct['p50']:>10.2f}x {server:>8} {upstream:>9} "
                f"{us(result, 'client'):>8}"
            )
    verdict = ", ".join(
        f"{label}: {ratio:.2f}x ({'met' if ratio <= 0.6 else 'not met'})"
        for label, ratio in added.items()
    )
    print(f"goal (issue 12 item 6): the gateway adds at most 0.6x the direct p50; {verdict}")

    base = mcp["json/gateway"]
    scale = [("3 tools, 1 server (base)", base)]
    if "tools/gateway" in mcp:
        scale.append((f"{args.mcp_tools:,} tools, 1 server", mcp["tools/gateway"]))
    if "servers/gateway" in mcp:
        scale.append((f"3 tools, {args.mcp_servers} servers", mcp["servers/gateway"]))
    print(
        f"\n{'through the gateway, JSON upstream':<34} {'p50 ms':>7} {'vs base':>8} "
        f"{'p99 ms':>7} {'gw cpu us/call':>14} {'vs base':>8} {'upstr cpu':>9}"
    )
    for name, result in scale:
        print(
            f"{name:<34} {result['p50'] * 1e3:>7.2f} {result['p50'] / base['p50']:>7.2f}x "
            f"{result['p99'] * 1e3:>7.2f} {us(result, 'server'):>14} "
            f"{result['cpu']['server'] / base['cpu']['server']:>7.2f}x "
            f"{us(result, 'upstream'):>9}"
        )
    if "tools/direct" in mcp:
        tools = mcp["tools/direct"]
        print(
            f"(direct to the {args.mcp_tools:,}-tool server: p50 {tools['p50'] * 1e3:.2f} ms, "
            f"its cpu {us(tools, 'server')} us/call)"
        )

    print(
        f"\n{'sessions and listings':<34} {'open ms':>8} {'close ms':>8} {'gw cpu ms':>9} "
        f"{'upstr ms':>8} {'list ms':>8} {'tools':>6}"
    )
    names = {
        "sse/direct": "SSE direct",
        "sse/gateway": "SSE gateway",
        "json/direct": "JSON direct",
        "json/gateway": "JSON gateway (base)",
        "servers/gateway": f"JSON gateway, {args.mcp_servers} servers",
        "tools/direct": f"JSON direct, {args.mcp_tools:,} tools",
        "tools/gateway": f"JSON gateway, {args.mcp_tools:,} tools",
    }
    for key, name in names.items():
        if key not in mcp:
            continue
        result = mcp[key]
        gw_cpu, up_cpu = result["open_cpu"].get("upstream"), result["open_cpu"]["server"]
        if gw_cpu is not None:
            gw_cpu, up_cpu = up_cpu, gw_cpu
        print(
            f"{name:<34} {result['open_p50'] * 1e3:>8.1f} {result['close_p50'] * 1e3:>8.1f} "
            f"{f'{gw_cpu / 1e3:.1f}' if gw_cpu is not None else '-':>9} "
            f"{up_cpu / 1e3:>8.1f} {result['list_p50'] * 1e3:>8.1f} {result['listed']:>6}"
        )
    print(
        f"(open: initialize of a new session, p50 of {args.mcp_opens}; close: its DELETE; "
        f"cpu ms per open + close, gateway and sample server; list: tools/list p50 of "
        f"{args.mcp_lists}, tools: how many it listed)"
    )
    versions = {f"{key} {result['protocol']}" for key, result in mcp.items()}
    print(f"protocol versions the client negotiated: {', '.join(sorted(versions))}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ROLES:
        role_main(sys.argv[1], sys.argv[2:])
    else:
        main()
