"""The in-process guard: each guarded tool call is decided for its task before it runs.

Every refusal has an allowed twin, through a real Decider over a real home (in-process)
or the control plane's ``/v1/decide`` (remote).
"""

from __future__ import annotations

import asyncio
import inspect
import pickle
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.gateway.task_home import INTENT, PLAYBOOK, SLACK, ControlPlane, control_plane
from zerolane.gateway.inproc import (
    EmbeddedDecider,
    RemoteDecider,
    ToolDenied,
    current_task,
    decide_on_loop,
    guard,
    inproc_url,
    safe_resource,
    task_context,
)
from zerolane.sdk import Agent, AsyncAgent, Task
from zerolane.sdk.guard import guard_context, proof_signer
from zerolane.tasks.decisions import DecideInput, Decision
from zerolane.tokens.rfc9449 import normalize_htu

TOOLS = PLAYBOOK["name"]
calls: list[str] = []


@guard("read", "files/{path}", sensitivity="internal")
def read_file(path: str, encoding: str = "utf-8") -> str:
    """Read a file (a tool)."""
    calls.append(f"read {path}")
    return f"contents of {path} ({encoding})"


@guard("delete", "files/{path}")
def delete_file(path: str) -> None:
    calls.append(f"delete {path}")


@guard("read", lambda report, **_: f"reports/{report}", sensitivity="internal")
async def read_report(report: str, *, lines: int = 10) -> str:
    """Read a report (an async tool)."""
    await asyncio.sleep(0)
    calls.append(f"read report {report}")
    return f"{lines} lines of {report}"


@guard("read", "reports/{report}", sensitivity="confidential")
async def read_ledger(report: str) -> str:
    calls.append(f"read ledger {report}")
    return report


@guard("delete", "reports/{report}")
async def delete_report(report: str) -> None:
    calls.append(f"delete report {report}")


@guard("write", "services/status", destination=SLACK, sensitivity="public")
def post_status(text: str) -> str:
    calls.append(f"post {text}")
    return "posted"


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with control_plane(tmp_path_factory.mktemp("inproc") / "home") as plane:
        yield plane


@pytest.fixture(autouse=True)
def _no_calls() -> None:
    calls.clear()


@pytest.fixture
def task(cp: ControlPlane) -> Iterator[Task]:
    with cp.agent() as agent, agent.task(playbook=TOOLS, intent=INTENT) as opened:
        yield opened


@pytest.fixture
def embedded(cp: ControlPlane) -> EmbeddedDecider:
    return EmbeddedDecider(cp.deployment.decider)


def test_the_url_convention_is_a_valid_reserved_htu() -> None:
    url = inproc_url("my tools", "mcp:files/read")
    assert url == "https://inproc.invalid/my%20tools/mcp%3Afiles%2Fread"
    assert normalize_htu(url) == url


def test_sync_tool_allowed_and_denied_twin(task: Task, embedded: EmbeddedDecider) -> None:
    with guard_context(task, decider=embedded):
        assert read_file("notes/q3.txt") == "contents of notes/q3.txt (utf-8)"
        with pytest.raises(ToolDenied) as denied:
            delete_file("notes/q3.txt")
    assert calls == ["read notes/q3.txt"]
    err = denied.value
    assert isinstance(err, PermissionError)
    assert (err.reason, err.reasons, err.status) == ("scope.action", ("scope.action",), 403)
    assert err.decision_id
    assert err.decision_id in str(err)


def test_async_tool_allowed_and_denied_twin(task: Task, embedded: EmbeddedDecider) -> None:
    async def run() -> str:
        with guard_context(task, decider=embedded):
            result = await read_report("q3", lines=3)
            with pytest.raises(ToolDenied) as denied:
                await delete_report("q3")
            assert denied.value.reason == "scope.action"
            return result

    assert asyncio.run(run()) == "3 lines of q3"
    assert calls == ["read report q3"]


def test_decisions_are_audited_with_the_mapped_request(
    cp: ControlPlane, task: Task, embedded: EmbeddedDecider
) -> None:
    with guard_context(task, decider=embedded):
        read_file("a/b.txt")
    last = cp.decisions()[-1]
    assert last["decision"] == "allow"
    assert (last["action"], last["resource"], last["destination"]) == (
        "read",
        "files/a/b.txt",
        "inproc",
    )
    assert (last["method"], last["url"]) == ("POST", inproc_url("inproc", "read"))


def test_resource_templates_out_of_scope_and_traversal(
    task: Task, embedded: EmbeddedDecider
) -> None:
    @guard("read", "{area}/{name}")
    def read_any(area: str, name: str = "index") -> str:
        calls.append(f"{area}/{name}")
        return name

    with guard_context(task, decider=embedded):
        assert read_any("reports") == "index"  # the default is bound too
        with pytest.raises(ToolDenied) as outside:
            read_any("payroll", "2026")
        for attack in ("../secrets", "a/../../b", "./x", "a//b", "%2e%2e", "a\\b", "*", ""):
            with pytest.raises(ToolDenied) as traversal:
                read_file(attack)
            assert traversal.value.reason == "guard.resource"
            assert traversal.value.status == 400  # as an unsafe path is everywhere
            assert traversal.value.decision_id is None
        assert read_file("a/b.txt")
    assert outside.value.reason == "scope.resource"
    assert calls == ["reports/index", "read a/b.txt"]


def test_a_resource_callable_that_fails_denies(task: Task, embedded: EmbeddedDecider) -> None:
    @guard("read", lambda n: f"reports/{1 // n}")
    def divide(n: int) -> int:
        calls.append("divide")
        return n

    @guard("read", lambda n: n)
    def not_text(n: int) -> int:
        calls.append("not_text")
        return n

    with guard_context(task, decider=embedded):
        with pytest.raises(ToolDenied) as failed:
            divide(0)
        assert isinstance(failed.value.__cause__, ZeroDivisionError)
        with pytest.raises(ToolDenied, match=r"guard\.resource"):
            not_text(1)
        assert divide(1) == 1
    assert calls == ["divide"]


def test_templates_are_checked_when_decorating() -> None:
    def tool(path: str) -> None: ...

    for bad in ("files/{name}", "files/{}", "files/{0}"):
        with pytest.raises(ValueError, match="names no parameter"):
            guard("read", bad)(tool)
    guard("read", "files/{path.upper}")(tool)  # attribute access on a parameter is fine


def test_wrappers_keep_the_signature_and_kind() -> None:
    assert inspect.signature(read_file) == inspect.signature(read_file.__wrapped__)  # type: ignore[attr-defined]
    assert str(inspect.signature(read_report)) == "(report: 'str', *, lines: 'int' = 10) -> 'str'"
    assert read_file.__name__ == "read_file"
    assert read_file.__doc__ == "Read a file (a tool)."
    assert inspect.iscoroutinefunction(read_report)
    assert not inspect.iscoroutinefunction(read_file)
    with pytest.raises(TypeError):
        read_file()  # type: ignore[call-arg]


def test_no_task_context_denies_sync_and_async() -> None:
    assert current_task() is None
    with pytest.raises(ToolDenied) as sync_denied:
        read_file("a.txt")
    with pytest.raises(ToolDenied) as async_denied:
        asyncio.run(read_report("q3"))
    assert sync_denied.value.reason == async_denied.value.reason == "guard.no_task"
    assert sync_denied.value.status == 401
    assert calls == []


def test_a_context_without_decider_denies(task: Task, embedded: EmbeddedDecider) -> None:
    @guard("read", "files/{path}", decider=embedded)
    def read_here(path: str) -> str:
        return path

    with task_context(task.token, proof_signer(task)) as credentials:
        assert current_task() is credentials
        with pytest.raises(ToolDenied, match=r"guard\.no_decider"):
            read_file("a.txt")
        assert read_here("a.txt") == "a.txt"  # the guard's own decider
    assert current_task() is None


def test_context_reaches_asyncio_tasks(task: Task, embedded: EmbeddedDecider) -> None:
    async def run() -> list[str]:
        with guard_context(task, decider=embedded):
            return list(await asyncio.gather(read_report("q1"), read_report("q2")))

    assert asyncio.run(run()) == ["10 lines of q1", "10 lines of q2"]


def test_chaining_a_confidential_read_into_egress_is_denied(
    cp: ControlPlane, embedded: EmbeddedDecider
) -> None:
    with cp.agent() as agent:
        with (
            agent.task(playbook=TOOLS, intent=INTENT) as clean,
            guard_context(clean, decider=embedded),
        ):
            assert post_status("Q3 is out") == "posted"  # the twin: no sensitive read
        with (
            agent.task(playbook=TOOLS, intent=INTENT) as tainted,
            guard_context(tainted, decider=embedded),
        ):
            asyncio.run(read_ledger("q3"))
            with pytest.raises(ToolDenied) as egress:
                post_status("Q3 is out")
    assert egress.value.reason == "flow.egress_after_sensitive_read"
    assert calls == ["post Q3 is out", "read ledger q3"]


def test_a_completed_task_is_denied(cp: ControlPlane, embedded: EmbeddedDecider) -> None:
    with cp.agent() as agent:
        with (
            agent.task(playbook=TOOLS, intent=INTENT) as done,
            guard_context(done, decider=embedded),
        ):
            read_file("a.txt")
        with guard_context(done, decider=embedded), pytest.raises(ToolDenied) as after:
            read_file("a.txt")
    assert after.value.reason == "task.completed"


def test_remote_decider_sync(task: Task) -> None:
    with guard_context(task):  # default: the control plane the task was opened at
        assert read_file("x.txt")
        with pytest.raises(ToolDenied) as denied:
            delete_file("x.txt")
    assert denied.value.reason == "scope.action"
    assert denied.value.decision_id
    assert calls == ["read x.txt"]


def test_remote_decider_async(cp: ControlPlane) -> None:
    async def run() -> str:
        agent = await AsyncAgent.attest(
            cp.url, enforcement_point=cp.enforcement_point, join_token=cp.join_token()
        )
        async with agent, agent.task(playbook=TOOLS, intent=INTENT) as task:
            with guard_context(task):
                result = await read_report("q3")
                with pytest.raises(ToolDenied, match=r"scope\.action"):
                    await delete_report("q3")
                # a remote decider without a client of its own opens one per call
                own = RemoteDecider(cp.url, credential=cp.enforcement_point)
                with task_context(task.token, proof_signer(task), decider=own):
                    assert await read_report("q4", lines=1) == "1 lines of q4"
            return result

    assert asyncio.run(run()) == "10 lines of q3"
    assert calls == ["read report q3", "read report q4"]


def test_remote_decider_with_its_own_clients_and_audience(cp: ControlPlane, task: Task) -> None:
    own = RemoteDecider(
        cp.url + "/", audience="spiffe://example.org", credential=cp.enforcement_point
    )
    with task_context(task.token, proof_signer(task), decider=own):
        assert read_file("y.txt")
    wrong = RemoteDecider(
        cp.url, audience="https://elsewhere.example", credential=cp.enforcement_point
    )
    with (
        task_context(task.token, proof_signer(task), decider=wrong),
        pytest.raises(ToolDenied) as denied,
    ):
        read_file("y.txt")
    assert (denied.value.reason, denied.value.status) == ("token.audience", 401)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_decider_denies(task: Task) -> None:
    down = RemoteDecider(f"http://127.0.0.1:{_closed_port()}", timeout=2)
    with task_context(task.token, proof_signer(task), decider=down):
        with pytest.raises(ToolDenied) as sync_denied:
            read_file("a.txt")
        with pytest.raises(ToolDenied) as async_denied:
            asyncio.run(read_report("q3"))
    for err in (sync_denied.value, async_denied.value):
        assert (err.reason, err.status) == ("decide.unavailable", 503)
    assert calls == []


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, {"decision": "allow"}),
        (200, {"decision": "maybe"}),
        (200, {"decision": "allow", "reasons": "no", "policies": [], "decision_id": "d"}),
        (200, ["allow"]),
        (200, "not json"),
    ],
)
def test_an_unexpected_answer_denies(task: Task, status: int, body: object) -> None:
    def answer(_: httpx.Request) -> httpx.Response:
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    transport = httpx.MockTransport(answer)
    with (
        httpx.Client(transport=transport) as client,
        task_context(
            task.token, proof_signer(task), decider=RemoteDecider("http://cp", client=client)
        ),
        pytest.raises(ToolDenied) as denied,
    ):
        read_file("a.txt")
    assert (denied.value.reason, denied.value.status) == ("decide.response", 503)
    assert calls == []


class _Broken:
    def decide(self, token: str, proof: str | None, request: DecideInput) -> Decision:
        raise RuntimeError("boom")

    async def adecide(self, token: str, proof: str | None, request: DecideInput) -> Decision:
        raise RuntimeError("boom")


def test_a_failing_decider_or_signer_denies(task: Task, embedded: EmbeddedDecider) -> None:
    with task_context(task.token, proof_signer(task), decider=_Broken()):
        with pytest.raises(ToolDenied, match=r"decide\.error"):
            read_file("a.txt")
        with pytest.raises(ToolDenied, match=r"decide\.error"):
            asyncio.run(read_report("q3"))

    def no_key(method: str, url: str) -> str:
        raise OSError("the key is gone")

    with task_context(task.token, no_key, decider=embedded), pytest.raises(ToolDenied) as err:
        read_file("a.txt")
    assert (err.value.reason, err.value.status) == ("guard.proof", 401)
    assert calls == []


def test_embedded_decider_audience(cp: ControlPlane, task: Task) -> None:
    elsewhere = EmbeddedDecider(cp.deployment.decider, audience="https://elsewhere.example")
    with guard_context(task, decider=elsewhere), pytest.raises(ToolDenied) as denied:
        read_file("a.txt")
    assert denied.value.reason == "token.audience"


def test_tool_denied_pickles_and_defaults() -> None:
    err = ToolDenied("scope.action", ("scope.action", "scope.resource"), "d1", 403)
    back = pickle.loads(pickle.dumps(err))  # noqa: S301 (our own bytes)
    assert (back.reason, back.reasons, back.decision_id, back.status) == (
        "scope.action",
        ("scope.action", "scope.resource"),
        "d1",
        403,
    )
    assert ToolDenied("guard.no_task").reasons == ("guard.no_task",)


@pytest.mark.parametrize(
    ("resource", "safe"),
    [
        ("files/a.txt", True),
        ("a", True),
        ("files/..", False),
        ("files/./a", False),
        ("/files", False),
        ("files/", False),
        ("files/a b", False),
        ("files/é", False),
        ("x" * 1025, False),
    ],
)
def test_safe_resource(resource: str, safe: bool) -> None:
    assert safe_resource(resource) is safe


class _SyncOnly:
    """A decider with only ``decide`` (a remote client, a test double)."""

    def __init__(self, answer: Decision) -> None:
        self.answer = answer
        self.threads: list[str] = []

    def decide(self, token: str, proof: str | None, request: DecideInput) -> Decision:
        self.threads.append(threading.current_thread().name)
        return self.answer


class _OnLoop(_SyncOnly):
    """A decider that decides on the event loop (as ``Decider.decide_async`` does)."""

    async def decide_async(self, token: str, proof: str | None, request: DecideInput) -> Decision:
        self.threads.append(threading.current_thread().name)
        return self.answer


def test_async_tools_decide_on_the_loop_when_the_decider_can() -> None:
    """No worker thread and back for a decider that decides on the loop without
    blocking it; a decider that can only block is still kept off the loop."""
    answer = Decision("d1", True, (), ("task.request",), "tsk_1", None)
    request = DecideInput("POST", "https://tools.invalid/x", action="x", resource="x")
    on_loop, sync_only = _OnLoop(answer), _SyncOnly(answer)
    loop_thread = threading.current_thread().name
    assert asyncio.run(decide_on_loop(on_loop, "t", "p", request)) is answer
    assert asyncio.run(EmbeddedDecider(on_loop).adecide("t", "p", request)) is answer
    assert on_loop.threads == [loop_thread, loop_thread]
    assert asyncio.run(decide_on_loop(sync_only, "t", "p", request)) is answer
    assert sync_only.threads[0] != loop_thread


def test_a_guard_that_is_no_enforcement_point_runs_nothing(cp: ControlPlane) -> None:
    """``/v1/decide`` answers only registered enforcement points: a guard without the
    credential of one is refused, and the tool never runs (fail closed)."""
    with Agent.attest(cp.url, join_token=cp.join_token()) as agent:  # no credential
        with (
            agent.task(playbook=TOOLS, intent=INTENT) as task,
            guard_context(task),
            pytest.raises(ToolDenied) as denied,
        ):
            read_file("x.txt")
        assert (denied.value.reason, denied.value.status) == ("enforcement_point.credential", 503)
        assert calls == []
        # the twin: the same agent's guard, as the registered point, is allowed
        agent.enforcement_point = cp.enforcement_point
        with agent.task(playbook=TOOLS, intent=INTENT) as task, guard_context(task):
            assert read_file("x.txt")
    assert calls == ["read x.txt"]
