"""``pip install zerolane`` is enough for an agent: the SDK attests, opens a task, asks a
decision, delegates, signs MCP requests and completes, sync and async, with none of the
extras' modules importable (no FastAPI, uvicorn, Starlette, Cedar, psycopg or MCP SDK),
nor pydantic (the core installs it for the command line; the SDK does not need it)."""

from __future__ import annotations

from tests.blocked_imports import EXTRAS_MODULES, run_without

BLOCKED = EXTRAS_MODULES | {"pydantic", "pydantic_core"}

#: an agent's whole life over a mock control plane (httpx.MockTransport: no server)
AGENT_STORY = """
import asyncio, httpx, httpx2
from zerolane.sdk import Agent, AsyncAgent

ANSWERS = {
    "/v1/attest": {"svid": "s", "spiffe_id": "spiffe://example.org/a", "expires_at": 1},
    "/v1/tasks": {"task_id": "t", "token": "tok", "expires_at": 1, "scope": {}},
    "/v1/decide": {"decision": "allow", "reasons": [], "policies": ["p"], "task_id": "t",
                   "decision_id": "d", "status": 200},
    "/v1/token": {"task_id": "c", "access_token": "child", "expires_at": 1,
                  "task": {"scope": {}}},
}

def answer(request):
    return httpx.Response(200, json=ANSWERS.get(request.url.path, {"state": "completed"}))

agent = Agent.attest("https://cp.example", join_token="j", enforcement_point="e",
                     http=httpx.Client(transport=httpx.MockTransport(answer)))
with agent.task(playbook="p", intent="i") as task:
    assert task.decide("GET", "https://api.example/r").allowed
    assert task.delegate(delegate_svid="other").token == "child"
    signed = httpx2.Request("POST", "https://mcp.example/mcp")
    next(task.mcp_auth().auth_flow(signed))
    assert signed.headers["Authorization"] == "DPoP tok"

async def story():
    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    agent = await AsyncAgent.attest("https://cp.example", join_token="j", http=http)
    async with agent, agent.task(playbook="p", intent="i") as task:
        assert (await task.decide("GET", "https://api.example/r")).allowed

asyncio.run(story())
print("agent ok")
"""


def test_the_sdk_needs_no_extra() -> None:
    done = run_without(BLOCKED, AGENT_STORY)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "agent ok"


def test_the_probe_does_block_the_extras() -> None:
    """The twin: under the same hook, the control plane's app cannot be imported."""
    done = run_without(BLOCKED, "import zerolane.server.app")
    assert done.returncode == 1
    assert "ModuleNotFoundError: No module named" in done.stderr


#: the decision core and everything behind it: a remote decider needs none of it
CORE = {
    "zerolane.tasks",
    "zerolane.policy",
    "zerolane.audit",
    "zerolane.server",
    "zerolane.config",
    "zerolane.store.sqlite",
    "zerolane.store.memory",
    "sqlite3",
}

#: guarded tools, sync and async, decided by the control plane (a mock of it)
GUARD_STORY = """
import asyncio, json, httpx
from zerolane.gateway.inproc import ToolDenied, guard
from zerolane.sdk import Agent, AsyncAgent
from zerolane.sdk.common import Svid

def answer(request):
    if request.url.path == "/v1/tasks":
        return httpx.Response(200, json={"task_id": "t", "token": "tok", "expires_at": 1,
                                         "scope": {}})
    if request.url.path == "/v1/decide":
        allowed = json.loads(request.content)["request"]["resource"] != "files/secret"
        return httpx.Response(200, json={
            "decision": "allow" if allowed else "deny",
            "reasons": [] if allowed else ["scope.resource"], "policies": [],
            "task_id": "t", "decision_id": "d", "status": 200 if allowed else 403})
    return httpx.Response(200, json={"state": "completed"})

@guard("read", "files/{name}")
def read(name):
    return "read " + name

@guard("read", "files/{name}")
async def aread(name):
    return "aread " + name

agent = Agent("https://cp.example", enforcement_point="zlep_tools",
              http=httpx.Client(transport=httpx.MockTransport(answer)))
agent.svid = Svid("s", "spiffe://example.org/a", 1)
with agent.task(playbook="p", intent="i") as task, task.guard_context():
    assert read("q3") == "read q3"
    try:
        read("secret")
    except ToolDenied as denied:
        assert (denied.reason, denied.status) == ("scope.resource", 403)
    else:
        raise AssertionError("the deny ran the tool")

async def story():
    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    agent = AsyncAgent("https://cp.example", enforcement_point="zlep_tools", http=http)
    agent.svid = Svid("s", "spiffe://example.org/a", 1)
    async with agent, agent.task(playbook="p", intent="i") as task:
        with task.guard_context():
            assert await aread("q3") == "aread q3"

asyncio.run(story())
print("guard ok")
"""


def test_the_guard_over_a_remote_decider_needs_no_decision_core() -> None:
    """The in-process guard asks the control plane: the decision core, the policy engine,
    the audit log and the stores are never imported (nor any extra)."""
    done = run_without(BLOCKED | CORE, GUARD_STORY)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "guard ok"


def test_a_local_decider_is_the_core_itself() -> None:
    """The twin: a guard deciding in this process uses the decision core, which the
    same hook refuses."""
    done = run_without(CORE, "from zerolane.tasks.decisions import Decider")
    assert done.returncode == 1
    assert "No module named 'zerolane.tasks'" in done.stderr
