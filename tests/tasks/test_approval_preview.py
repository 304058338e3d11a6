"""What an approver is shown: a masked preview of the request (HTTP method, path, query,
body excerpt; a tool call's arguments), never a secret it held, stored with the
approval and bounded; each masking test beside its twin that keeps what is harmless."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.tasks.conftest import ADMIN, WIKI, Agent, World
from tests.tasks.test_approvals import ASK_WIKI_WRITES, BODY, approvals
from zerolane.policy.context import McpFacts
from zerolane.tasks.approval_preview import (
    MAX_EXCERPT,
    MAX_PREVIEW,
    body_preview,
    call_preview,
    http_preview,
    shown_preview,
    stored_preview,
    url_preview,
)
from zerolane.tasks.approvals import body_digest
from zerolane.tasks.decisions import DecideInput, Decision

JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
CREDENTIAL = "zla_" + "A" * 43


def test_an_http_preview_masks_secret_query_values_and_keeps_the_rest() -> None:
    shown = http_preview("post", "/bank/pay", f"api_key=hunter2&amount=12&note={JWT}&page=2", None)
    assert shown["method"] == "POST"
    assert shown["path"] == "/bank/pay"
    query = dict(shown["query"])
    assert query["amount"] == "12"
    assert query["page"] == "2"
    assert query["api_key"].startswith("***")  # by its name
    assert query["note"].startswith("***")  # by its shape
    assert "hunter2" not in json.dumps(shown)
    assert JWT not in json.dumps(shown)
    assert "body" not in shown  # a body not read is not shown


def test_a_json_body_is_shown_masked_and_cut() -> None:
    body = json.dumps({"to": "acme", "amount": 12, "password": "hunter2", "memo": JWT}).encode()
    shown = body_preview(body, "application/json")
    assert shown["size"] == len(body)
    excerpt = shown["excerpt"]
    assert '"amount":12' in excerpt
    assert '"to":"acme"' in excerpt
    assert "hunter2" not in excerpt
    assert JWT not in excerpt
    big = json.dumps({"text": "x" * 5000}).encode()
    cut = body_preview(big, "application/vnd.api+json")["excerpt"]
    assert len(cut) == MAX_EXCERPT + 3
    assert cut.endswith("...")
    assert body_preview(b"{not json", "application/json")["excerpt"] is None


def test_a_form_body_is_shown_masked_and_other_bodies_by_size_only() -> None:
    form = body_preview(b"user=bob&password=hunter2", "application/x-www-form-urlencoded")
    fields = dict(form["form"])
    assert fields["user"] == "bob"
    assert fields["password"].startswith("***")
    assert body_preview(b"\xff\xfe", "application/x-www-form-urlencoded")["form"] is None
    text = body_preview(b"password: hunter2", "text/plain")
    assert text == {"size": 17, "type": "text/plain"}  # no excerpt: it could hold anything
    assert body_preview(b"", "application/json") == {"size": 0, "type": "application/json"}
    assert http_preview("GET", "/x", "", b"")["body"] == {"size": 0}


def test_a_tool_call_and_a_url_preview() -> None:
    call = call_preview("tool", "send_email", {"to": "a@b", "token": "s3cr3t"})
    assert call["tool"] == "send_email"
    assert '"to":"a@b"' in call["arguments"]
    assert "s3cr3t" not in call["arguments"]
    shown = url_preview("get", "https://h.example/a/b?secret=x&q=1")
    assert (shown["method"], shown["path"]) == ("GET", "/a/b")
    assert shown["query"][1] == ["q", "1"]
    assert shown["query"][0][0] == "secret"
    assert shown["query"][0][1].startswith("***")


def test_a_stored_preview_is_masked_again_and_bounded() -> None:
    careless: dict[str, Any] = {"function": "pay", "arguments": {"client_secret": "hunter2"}}
    text = stored_preview({**careless, "note": CREDENTIAL})
    assert "hunter2" not in text
    assert CREDENTIAL not in text
    assert json.loads(text)["function"] == "pay"
    huge = stored_preview({"arguments": ["x" * 100] * 100})
    assert len(huge) <= MAX_PREVIEW
    assert json.loads(huge)["truncated"] is True
    assert shown_preview(None) is None
    assert shown_preview("not json") is None
    assert shown_preview("[1]") is None
    assert shown_preview('{"a":1}') == {"a": 1}


@pytest.fixture
def asking(world: World) -> World:
    folder = world.deployment.home / world.deployment.config.policy_dir
    (folder / "approval.cedar").write_text(ASK_WIKI_WRITES)
    world.deployment.reload_policies(ADMIN)
    return world


def write(world: World, agent: Agent, token: str, **extra: Any) -> Decision:
    url = f"https://{WIKI}/wiki/q3"
    return world.deployment.decider.decide(
        token,
        world.proof(agent.key, "POST", url, token),
        DecideInput(
            method="POST",
            url=url,
            action="write",
            resource="wiki/q3",
            destination=WIKI,
            sensitivity="internal",
            digest=body_digest(BODY),
            **extra,
        ),
    )


def stored(world: World, decision: Decision) -> dict[str, Any]:
    assert decision.approval_id is not None
    preview = shown_preview(approvals(world).get(decision.approval_id).preview)
    assert preview is not None
    return preview


def test_the_approval_keeps_the_preview_the_enforcement_point_gives(
    asking: World, agent: Agent
) -> None:
    token = asking.open(agent).token
    body = json.dumps({"page": "q3", "api_key": "hunter2"}).encode()
    asked = write(
        asking,
        agent,
        token,
        preview=lambda: http_preview("POST", "/wiki/q3", "token=abc", body, "application/json"),
    )
    preview = stored(asking, asked)
    assert (preview["method"], preview["path"]) == ("POST", "/wiki/q3")
    assert '"page":"q3"' in preview["body"]["excerpt"]
    text = json.dumps(preview)
    assert "hunter2" not in text
    assert "abc" not in dict(preview["query"])["token"]
    # nothing secret reached the audit log either
    assert "hunter2" not in json.dumps(asking.events())


def test_without_a_preview_the_approval_shows_the_method_and_path(
    asking: World, agent: Agent
) -> None:
    token = asking.open(agent).token
    assert stored(asking, write(asking, agent, token)) == {"method": "POST", "path": "/wiki/q3"}


def test_an_mcp_call_is_shown_by_its_tool_and_masked_arguments(asking: World, agent: Agent) -> None:
    token = asking.open(agent).token
    mcp = McpFacts.of_call(
        "mail", "send_email", read_only=False, destructive=False, arguments={"to": "x@y"}
    )
    asked = write(
        asking,
        agent,
        token,
        mcp=mcp,
        details={"tool": "send_email", "arguments": {"to": "x@y", "password": "hunter2"}},
    )
    preview = stored(asking, asked)
    assert (preview["tool"], preview["server"]) == ("send_email", "mail")
    assert '"to":"x@y"' in preview["arguments"]
    assert "hunter2" not in json.dumps(preview)


def test_a_preview_that_fails_still_asks_for_the_approval(
    asking: World, agent: Agent, caplog: pytest.LogCaptureFixture
) -> None:
    token = asking.open(agent).token

    def broken() -> dict[str, object]:
        raise RuntimeError("password=hunter2")  # a message that quotes the request

    asked = write(asking, agent, token, preview=broken)
    assert asked.reasons == ("approval.required",)
    assert asked.approval_id is not None
    assert approvals(asking).get(asked.approval_id).preview is None
    assert "could not be built: RuntimeError" in caplog.text
    assert "hunter2" not in caplog.text  # never logged


def test_an_mcp_resource_read_is_shown_with_its_uri(asking: World, agent: Agent) -> None:
    token = asking.open(agent).token
    mcp = McpFacts.of_call(
        "files", "", read_only=True, destructive=False, method="resources/read", uri="file:///q3"
    )
    preview = stored(asking, write(asking, agent, token, mcp=mcp))
    assert (preview["mcp_method"], preview["uri"]) == ("resources/read", "file:///q3")


def test_a_preview_masks_secrets_the_audit_names_miss_and_keeps_their_twins() -> None:
    """A presigned URL's signature, an OAuth code, a password by a short name, a bearer
    value, a secret parameter of a URL in the arguments: never stored in clear; amounts,
    a zip code, a plain URL parameter stay readable for the approver."""
    query = (
        "key=K1&sig=S1&X-Amz-Signature=S2&code=C1&pwd=P1&pass=P2&auth=A1&sessionid=SI"
        "&access_key=AK&amount=12&zip_code=75001&next=https://h.example/cb?token=T1%26page=2"
    )
    text = stored_preview(http_preview("GET", "/bank/pay", query, None))
    for secret in ("K1", "S1", "S2", "C1", "P1", "P2", "A1", "SI", "AK", "T1"):
        assert f'"{secret}"' not in text
        assert f"={secret}" not in text
    pairs = dict(json.loads(text)["query"])
    assert pairs["amount"] == "12"
    assert pairs["zip_code"] == "75001"
    assert pairs["next"].startswith("https://h.example/cb?token=***")
    assert pairs["next"].endswith("&page=2")

    call = call_preview(
        "tool",
        "fetch",
        {
            "url": "https://api.example/v1?api_key=LEAK1&q=cats",
            "header": "Bearer LEAK2",
            "pin": 1234,
            "session": {"id": "LEAK3"},
            "amount": 3,
            "note": "pay the bearer of this note",
        },
    )
    stored = stored_preview(call)
    for secret in ("LEAK1", "LEAK2", "1234", "LEAK3"):
        assert secret not in stored
    arguments = json.loads(json.loads(stored)["arguments"])
    assert arguments["url"].endswith("&q=cats")
    assert arguments["amount"] == 3
    assert arguments["note"] == "pay the bearer of this note"
    # the same done to a JSON body and a form body
    body = json.dumps({"order": {"sig": "LEAK4", "qty": 2}}).encode()
    assert "LEAK4" not in json.dumps(body_preview(body, "application/json"))
    assert '"qty":2' in body_preview(body, "application/json")["excerpt"]
    form = dict(body_preview(b"pwd=LEAK5&user=bob", "application/x-www-form-urlencoded")["form"])
    assert form["user"] == "bob"
    assert form["pwd"].startswith("***")
