"""``zerolane task tree``: a task and its delegated descendants, from a real home."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from tests.server.task_fixtures import ADMIN, INTENT, playbook
from zerolane.cli import task as task_cli
from zerolane.identity.service import AttestRequest
from zerolane.server.deployment import Deployment, init_home
from zerolane.tasks.lifecycle import OpenRequest
from zerolane.tasks.playbooks import parse_playbook
from zerolane.tokens.rfc8693 import ACCESS_TOKEN_TYPE, JWT_TYPE, ExchangeRequest
from zerolane.tokens.rfc9449 import make_proof, proof_jwk

runner = CliRunner()
app = typer.Typer()
app.add_typer(task_cli.app, name="task")
A, B = "spiffe://example.org/agents/a1", "spiffe://example.org/agents/a2"
URL = "https://cp.example.org/v1/token"


def _svid(deployment: Deployment, spiffe_id: str) -> tuple[ec.EllipticCurvePrivateKey, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    join = deployment.join_tokens.create(spiffe_id, ttl=600, actor=ADMIN).token
    issued = deployment.identity.attest(
        AttestRequest(evidence={"join_token": join}, public_jwk=proof_jwk(key))
    )
    return key, issued.token


def _tree(home: Path) -> tuple[str, str]:
    """A root task of a1 with one child delegated to a2; their ids."""
    deployment, _ = init_home(home, "example.org")
    try:
        for spiffe_id in (A, B):
            deployment.registry.register(spiffe_id, selectors=[], owner=None, actor=ADMIN)
        team = playbook(name="team", delegable=True, max_depth=1)
        deployment.playbooks.apply(parse_playbook(team, "t"), ADMIN)
        key, svid = _svid(deployment, A)
        url = "https://cp.example.org/v1/tasks"
        caller = deployment.authenticator.workload(
            svid,
            make_proof(key, method="POST", url=url, access_token=svid),
            method="POST",
            url=url,
        )
        root = deployment.lifecycle.open(caller, OpenRequest(INTENT, "team", max_calls=5))
        _, helper_svid = _svid(deployment, B)
        child = deployment.exchange.exchange(
            ExchangeRequest(root.token, ACCESS_TOKEN_TYPE, helper_svid, JWT_TYPE, max_calls=2),
            make_proof(key, method="POST", url=URL, access_token=root.token),
            url=URL,
        )
        deployment.lifecycle.revoke(root.task.task_id, actor=ADMIN)
        return root.task.task_id, child.task.task_id
    finally:
        deployment.close()


def test_task_tree_shows_the_delegation_tree(tmp_path: Path) -> None:
    home = tmp_path / "home"
    root, child = _tree(home)
    shown = runner.invoke(app, ["task", "tree", root, "--home", str(home)])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert root in lines[0]
    assert A in lines[0]
    assert "revoked" in lines[0]
    assert child in lines[1]
    assert B in lines[1]
    assert "parent.revoked" in shown.output
    as_json = runner.invoke(app, ["task", "tree", root, "--json", "--home", str(home)])
    assert as_json.exit_code == 0, as_json.output
    doc = json.loads(as_json.output)
    assert [(t["task_id"], t["parent_id"], t["depth"]) for t in doc] == [
        (root, None, 0),
        (child, root, 1),
    ]


def test_task_tree_of_an_unknown_task_fails(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _tree(home)
    refused = runner.invoke(app, ["task", "tree", "tsk_nope", "--home", str(home)])
    assert refused.exit_code != 0
