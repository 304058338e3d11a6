"""``zerolane probe`` end to end: a probe file, a running deployment, the exit code."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner, Result

from tests.gateway.conftest import AUDIENCE, Stack
from tests.probe.weak_target import Weakness, WeakTarget
from zerolane.cli.main import app
from zerolane.cli.probe import build_profile, chosen_scenarios, read_probe_file
from zerolane.errors import InvalidInput
from zerolane.probe import report_json
from zerolane.probe.profile import Call
from zerolane.probe.scenarios import CATALOG

runner = CliRunner()


def _probe(*args: str) -> Result:
    return runner.invoke(app, ["probe", *args])


def probe_file(folder: Path, stack: Stack, playbook: str, *, extra: str = "") -> Path:
    path = folder / "probe.toml"
    path.write_text(
        f"""
[credentials]
kind = "zerolane"
home = "{stack.home}"
playbook = "{playbook}"
audience = ["{AUDIENCE}"]
control_plane = "{stack.control.url}"

[target]
allowed = "GET /finance/reports/q3"
forbidden = "DELETE /finance/reports/q3"
{extra}
"""
    )
    return path


def test_list_names_every_scenario() -> None:
    result = _probe("--list", "--json")
    assert result.exit_code == 0, result.output
    assert [s["id"] for s in json.loads(result.output)] == [s.id for s in CATALOG]
    table = _probe("--list")
    assert table.exit_code == 0
    assert "proof.replayed" in table.output


def test_without_a_probe_file_the_error_says_what_to_give() -> None:
    result = _probe("--target", "http://127.0.0.1:9")
    assert result.exit_code == 2
    assert "error probe.credentials: give --credentials FILE" in result.output


def test_a_bad_probe_file_is_refused_whole(tmp_path: Path) -> None:
    path = tmp_path / "probe.toml"
    path.write_text('[credentials]\nkind = "static"\n[target]\nallowed = "GET x"\ncolour = 1\n')
    result = _probe("--credentials", str(path), "--target", "http://127.0.0.1:9")
    assert result.exit_code == 2
    assert "credentials.static: token: give token_file or token_env" in result.output
    assert "target.allowed: a request is 'METHOD /path'" in result.output
    assert "target.colour: unknown key" in result.output
    path.write_text("[credentials\n")
    assert _probe("--credentials", str(path)).exit_code == 2
    with pytest.raises(InvalidInput, match=r"probe\.file"):
        read_probe_file(tmp_path / "missing.toml")


def test_a_url_with_a_user_or_password_is_refused_the_plain_one_taken(tmp_path: Path) -> None:
    """user:secret@ in a URL would reach every report (and go as Basic auth)."""
    path = tmp_path / "probe.toml"
    body = '[credentials]\nkind = "static"\ntoken_env = "T"\n[target]\nallowed = "GET /x"\n'
    path.write_text(body + 'url = "https://probe:hunter2@target.example"\n')
    with pytest.raises(InvalidInput, match="holds no user or password") as refused:
        read_probe_file(path)
    assert "hunter2" not in str(refused.value.message)
    path.write_text(body + 'url = "https://target.example"\n')
    assert read_probe_file(path).target.url == "https://target.example"
    with pytest.raises(InvalidInput, match="holds no user or password"):
        build_profile(read_probe_file(path).target, "http://u:p@127.0.0.1:9")
    assert build_profile(read_probe_file(path).target, "http://127.0.0.1:9").url == (
        "http://127.0.0.1:9"
    )


def test_only_takes_ids_and_families_and_refuses_unknown_ones() -> None:
    assert [s.id for s in chosen_scenarios(["proof.replayed"])] == ["proof.replayed"]
    family = [s.id for s in chosen_scenarios(["proof"])]
    assert "proof.replayed" in family
    assert all(i.startswith("proof.") for i in family)
    with pytest.raises(InvalidInput, match=r"no scenario nope\.nothing"):
        chosen_scenarios(["nope.nothing"])


def test_the_probe_against_the_gateway_passes_and_exits_0(
    stack: Stack, probe_playbook: str, tmp_path: Path
) -> None:
    path = probe_file(tmp_path, stack, probe_playbook)
    result = _probe(
        "--credentials", str(path), "--target", stack.public_url, "--only", "proof.replayed"
    )
    assert result.exit_code == 0, result.output
    assert "proof.replayed" in result.output
    assert "1 pass" in result.output


def test_an_accepted_attack_exits_1(stack: Stack, probe_playbook: str, tmp_path: Path) -> None:
    """The echo upstream behind the gateway checks nothing: probed directly, the replayed
    proof goes through."""
    path = probe_file(tmp_path, stack, probe_playbook)
    result = _probe("--credentials", str(path), "--target", stack.upstream.url, "--only", "proof")
    assert result.exit_code == 1, result.output
    assert "fail" in result.output


def test_a_static_token_makes_proof_scenarios_not_applicable(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROBE_TOKEN", "a-static-token")
    path = tmp_path / "probe.toml"
    path.write_text(
        '[credentials]\nkind = "static"\ntoken_env = "PROBE_TOKEN"\n'
        '[target]\nallowed = "GET /finance/reports/q3"\n'
    )
    result = _probe(
        "--credentials", str(path), "--target", stack.public_url, "--only", "proof.replayed"
    )
    assert result.exit_code == 0, result.output
    assert "not_applicable" in result.output
    assert "a-static-token" not in result.output
    monkeypatch.delenv("PROBE_TOKEN")
    unset = _probe("--credentials", str(path), "--target", stack.public_url)
    assert unset.exit_code == 2
    assert "$PROBE_TOKEN is not set" in unset.output


def _oauth_file(folder: Path, target: WeakTarget, kind: str = "client_credentials") -> Path:
    (folder / "secret").write_text(target.client_secret + "\n")
    path = folder / "probe.toml"
    path.write_text(
        f"""
[credentials]
kind = "client_credentials"
token_url = "{target.token_url}"
client_id = "{target.client_id}"
client_secret_file = "secret"
scope = "read"
resource = "{target.audience}"
revocation_url = "{target.revoke_url}"
jwks_url = "{target.jwks_url}"
exchange = true

[target]
url = "{target.url}"
allowed = "GET /data/reports/q3"
forbidden = "DELETE /data/reports/q3"
"""
    )
    return path


def test_client_credentials_against_a_sound_target_pass(tmp_path: Path) -> None:
    with WeakTarget() as target:
        path = _oauth_file(tmp_path, target)
        result = _probe("--credentials", str(path), "--only", "proof", "--only", "task", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    outcomes = {r["id"]: r["outcome"] for r in report["results"]}
    assert outcomes["proof.replayed"] == "pass"
    assert outcomes["task.reused_after_revocation"] == "pass"
    assert target.client_secret not in result.output


def test_client_credentials_against_a_replaying_target_fail(tmp_path: Path) -> None:
    with WeakTarget(Weakness.REPLAYED_PROOFS) as target:
        path = _oauth_file(tmp_path, target)
        result = _probe("--credentials", str(path), "--only", "proof.replayed", "--json")
    assert result.exit_code == 1, result.output
    (only,) = json.loads(result.output)["results"]
    assert only["outcome"] == "fail"


def test_a_missing_client_secret_is_refused(tmp_path: Path) -> None:
    with WeakTarget() as target:
        path = _oauth_file(tmp_path, target)
        (tmp_path / "secret").unlink()
        result = _probe("--credentials", str(path))
    assert result.exit_code == 2
    assert "error probe.secret: cannot read client_secret" in result.output


def test_the_terminal_table_shows_a_reason_as_plain_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reason quotes the target (a JSON-RPC error's message): rich markup in it is
    shown as written, never styled (a '[green]pass' dressed up) nor a crash ('[/x]')."""
    from rich.console import Console

    from zerolane.cli import probe as probe_cli
    from zerolane.probe.model import Outcome, Result
    from zerolane.probe.report import Report

    shown = Console(record=True, width=300, color_system="truecolor")
    monkeypatch.setattr(probe_cli, "console", shown)
    hostile = "refused (JSON-RPC error 1: [green]all good[/green] [/x])"
    plain = "refused (status 403)"
    results = (
        Result("mcp.tool_outside_task", Outcome.PASS, hostile),
        Result("token.no_proof", Outcome.PASS, plain),
    )
    probe_cli._print_report(Report("http://t", "static", 0.0, 1.0, (), results))
    text = shown.export_text()
    assert "[green]all good[/green] [/x]" in text
    assert plain in text
    assert "\x1b[32mall good" not in shown.export_text(styles=True)


def test_the_callback_url_is_where_the_jku_key_is_served(tmp_path: Path) -> None:
    """A target that fetches the jku URL is found whether the listener's address comes
    from the file or from --callback-url (which wins)."""
    with WeakTarget(Weakness.TRUSTS_JKU_HEADER) as target:
        path = _oauth_file(tmp_path, target)
        path.write_text('callback_url = "http://127.0.0.1:0"\n' + path.read_text())
        from_file = _probe("--credentials", str(path), "--only", "token.jku_injection", "--json")
        given = _probe(
            "--credentials",
            str(path),
            "--only",
            "token.jku_injection",
            "--callback-url",
            "http://localhost:0",
            "--json",
        )
    assert from_file.exit_code == 1, from_file.output
    document = json.loads(from_file.output)
    jsonschema.Draft202012Validator(report_json.schema()).validate(document)
    (found,) = document["results"]
    assert found["outcome"] == "fail"
    assert [e["role"] for e in found["evidence"]] == ["twin", "attack", "callback"]
    assert found["evidence"][2]["request"]["url"].startswith("http://127.0.0.1:")
    assert given.exit_code == 1, given.output
    (found,) = json.loads(given.output)["results"]
    assert found["evidence"][2]["request"]["url"].startswith("http://localhost:")


def test_a_bad_callback_url_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "probe.toml"
    body = '[credentials]\nkind = "static"\ntoken_env = "T"\n[target]\nallowed = "GET /x"\n'
    path.write_text('callback_url = "https://probe.example/jwks"\n' + body)
    result = _probe("--credentials", str(path), "--target", "http://127.0.0.1:9")
    assert result.exit_code == 2
    assert "callback_url: an http://host[:port] URL" in result.output
    path.write_text('callback_url = "http://probe.example:70000"\n' + body)
    with pytest.raises(InvalidInput, match="a port is 0-65535"):
        read_probe_file(path)
    path.write_text(body)
    result = _probe(
        "--credentials", str(path), "--target", "http://127.0.0.1:9", "--callback-url", "ftp://x"
    )
    assert result.exit_code == 2
    assert "error probe.callback_url: a callback URL is http://host[:port]" in result.output


def test_echo_names_one_route_or_several(tmp_path: Path) -> None:
    path = tmp_path / "probe.toml"
    body = '[credentials]\nkind = "static"\ntoken_env = "T"\n[target]\nallowed = "GET /x"\n'
    path.write_text(body + 'echo = "GET /echo"\n')
    assert build_profile(read_probe_file(path).target, "http://t").echoes == (Call("GET", "/echo"),)
    path.write_text(body + 'echo = ["GET /echo", "POST /v2/echo"]\n')
    assert build_profile(read_probe_file(path).target, "http://t").echoes == (
        Call("GET", "/echo"),
        Call("POST", "/v2/echo"),
    )
    path.write_text(body + "echo = []\n")
    assert build_profile(read_probe_file(path).target, "http://t").echoes == ()
    path.write_text(body + 'echo = ["GET /echo", "nope"]\n')
    with pytest.raises(InvalidInput, match="a request is 'METHOD /path'"):
        read_probe_file(path)
    path.write_text(body)
    assert build_profile(read_probe_file(path).target, "http://t").echoes == ()


def test_an_issuer_stands_for_the_endpoints(tmp_path: Path) -> None:
    """issuer instead of token_url, revocation_url and jwks_url: the weak target's
    RFC 8414 metadata names them, and the scenarios needing them run."""
    with WeakTarget() as target:
        path = _oauth_file(tmp_path, target)
        text = path.read_text()
        for line in text.splitlines():
            if line.startswith(("token_url", "revocation_url", "jwks_url")):
                text = text.replace(line + "\n", "")
        path.write_text(text.replace("exchange = true", f'issuer = "{target.issuer}"'))
        result = _probe(
            "--credentials",
            str(path),
            "--only",
            "task.reused_after_revocation",
            "--only",
            "token.hs256_public_key",
            "--json",
        )
    assert result.exit_code == 0, result.output
    outcomes = {r["id"]: r["outcome"] for r in json.loads(result.output)["results"]}
    assert outcomes == {"task.reused_after_revocation": "pass", "token.hs256_public_key": "pass"}


def test_an_oauth_file_names_a_token_url_or_an_issuer(tmp_path: Path) -> None:
    path = tmp_path / "probe.toml"
    path.write_text(
        '[credentials]\nkind = "token_exchange"\nsubject_token_env = "S"\n'
        '[target]\nallowed = "GET /x"\n'
    )
    result = _probe("--credentials", str(path), "--target", "http://127.0.0.1:9")
    assert result.exit_code == 2
    assert "give token_url, or issuer to discover it from" in result.output
    path.write_text(
        '[credentials]\nkind = "token_exchange"\nsubject_token_env = "S"\n'
        'issuer = "https://as.example/tenant"\n[target]\nallowed = "GET /x"\n'
    )
    given = read_probe_file(path).credentials
    assert given.kind == "token_exchange"
    assert (given.token_url, given.issuer) == (None, "https://as.example/tenant")
