"""``zerolane demo``: the end-to-end story, narrated, in a throwaway home."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import jwt
import typer
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from rich.panel import Panel

from zerolane.audit.events import Actor
from zerolane.cli.background import BackgroundServer
from zerolane.cli.common import console
from zerolane.server.deployment import Deployment, init_home
from zerolane.tokens.rfc7638 import thumbprint

TD = "demo.zerolane.dev"
AGENT = f"spiffe://{TD}/agents/report-writer"
ADMIN = Actor("admin", "demo")


class DemoFailed(Exception):
    """A step of the story did not behave as zerolane promises."""


def _step(title: str) -> None:
    console.print(f"\n[bold cyan]▶ {title}[/bold cyan]")


def _ok(text: str) -> None:
    console.print(f"  [green]✔[/green] {text}", highlight=False)


def _refused(text: str) -> None:
    console.print(f"  [red]✘[/red] {text}", highlight=False)


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise DemoFailed(what)


def _agent_key() -> tuple[ec.EllipticCurvePrivateKey, dict[str, str]]:
    key = ec.generate_private_key(ec.SECP256R1())
    full: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    return key, {k: full[k] for k in ("kty", "crv", "x", "y")}


def _story(home: Path) -> None:
    _step(f"An admin creates a trust domain: spiffe://{TD}")
    deployment, _admin_token = init_home(home, TD)
    _ok(f"ES256 signing key {deployment.keyring.active_kid()[:16]}… written 0600 under {home}")
    _ok("admin credential printed once (kept only as a hash)")

    with BackgroundServer(deployment) as server:
        _ok(f"control plane up at {server.url}")

        _step("The admin registers an AI agent and hands it a one-time join token")
        deployment.registry.register(AGENT, selectors=[], owner="reports-team", actor=ADMIN)
        token = deployment.join_tokens.create(AGENT, ttl=300, actor=ADMIN).token
        _ok(f"registered {AGENT}")
        _ok("join token minted (stored hashed, single use, 5 minutes)")

        _step("The agent attests over HTTP, presenting its own public key")
        _key, jwk = _agent_key()
        reply = httpx.post(f"{server.url}/v1/attest", json={"join_token": token, "public_jwk": jwk})
        _expect(reply.status_code == 200, f"attestation failed: {reply.text}")
        svid = reply.json()["svid"]
        _ok(f"JWT-SVID for {reply.json()['spiffe_id']}, valid {reply.json()['expires_in']} s")

        _step("Anyone can verify the SVID against the published key set")
        jwks = httpx.get(f"{server.url}/.well-known/jwks.json").json()
        kid = jwt.get_unverified_header(svid)["kid"]
        claims = jwt.decode(
            svid,
            jwt.PyJWKSet.from_dict(jwks)[kid].key,
            algorithms=["ES256"],
            audience=f"spiffe://{TD}",
        )
        _expect(claims["cnf"]["jkt"] == thumbprint(jwk), "SVID not bound to the agent's key")
        _ok(f"signature verified (kid {kid[:16]}…), sub = {claims['sub']}")
        _ok("bound to the agent's key: cnf.jkt = its RFC 7638 thumbprint")

        _step("A thief replays the join token from a log")
        replay = httpx.post(f"{server.url}/v1/attest", json={"join_token": token})
        _expect(replay.status_code == 401, "a used join token was accepted")
        _refused(f"refused: {replay.status_code} {replay.json()['reason']} (and audited)")

        _step("The admin rotates the signing key")
        old_kid = kid
        new_kid = deployment.rotate_keys(ADMIN)
        kids = [k["kid"] for k in httpx.get(f"{server.url}/.well-known/jwks.json").json()["keys"]]
        _expect(old_kid in kids and new_kid in kids, "rotation dropped a live key")
        _ok(f"new key {new_kid[:16]}… signs; old key stays published until its tokens expire")

    _step("Every step is in the hash-chained audit log")
    count, broken = deployment.audit.verify()
    _expect(broken is None, "the audit chain is broken")
    for record in deployment.audit.tail(count):
        colour = {"success": "green", "denied": "red"}.get(record.outcome, "yellow")
        console.print(
            f"  {record.seq:>3} {record.kind:<20} [{colour}]{record.outcome}[/{colour}]",
            highlight=False,
        )
    _ok(f"{count} events, chain intact")
    deployment.close()


def _serve_until_interrupted(home: Path) -> None:
    deployment = Deployment.open(home)
    with BackgroundServer(deployment) as server:
        console.print(
            f"\nThe control plane keeps serving at {server.url} "
            "(try /.well-known/jwks.json, /openapi.json); Ctrl-C to stop."
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            console.print("stopped")
    deployment.close()


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        once: Annotated[
            bool, typer.Option("--once", help="Exit 0 after the story (for make demo and CI).")
        ] = False,
    ) -> None:
        """Run the end-to-end story in a throwaway home, narrated."""
        home = Path(tempfile.mkdtemp(prefix="zerolane-demo-")) / "home"
        console.print(Panel.fit("[bold]zerolane demo[/bold]: zero trust for the machine lane"))
        started = time.perf_counter()
        try:
            _story(home)
        except DemoFailed as err:
            console.print(f"\n[bold red]demo failed:[/bold red] {err}")
            raise typer.Exit(1) from err
        console.print(
            f"\n[bold green]Done[/bold green] in {time.perf_counter() - started:.1f} s. "
            f"Audit log: {home / 'zerolane.db'}\n"
            f"  inspect it: zerolane audit tail --home {home}\n"
            f"  verify it:  zerolane audit verify --home {home}"
        )
        if not once:
            _serve_until_interrupted(home)
