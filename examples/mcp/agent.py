"""An agent reading a report through the MCP gateway (examples/mcp/mcp-gateway.toml).

    .venv/bin/python examples/mcp/agent.py [--token-file F] [--control-plane URL] [--gateway URL]

It attests with the join token in ``token`` (single use: make a new one for each run),
opens a task under the playbook examples/playbooks/report-reader.yaml for the gateway's
audience, lists the tools (only those the task may call), calls ``read_report`` (allowed)
and ``delete_report`` (refused: not in the playbook), and prints what happened. Leaving
the task block completes the task. Reference: docs/mcp-gateway.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import anyio
import httpx2
from mcp import ClientSession, MCPError
from mcp.client.streamable_http import streamable_http_client

from zerolane.sdk import Agent, Task
from zerolane.sdk.mcp_auth import MCP_TIMEOUT


async def use_tools(gateway: str, task: Task) -> None:
    async with (
        httpx2.AsyncClient(auth=task.mcp_auth(), timeout=MCP_TIMEOUT) as http,
        streamable_http_client(gateway, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        tools = await session.list_tools()  # only what the task may call
        print("tools/list:", *sorted(tool.name for tool in tools.tools))
        result = await session.call_tool("read_report", {"name": "q3"})
        print("tools/call read_report:", *(getattr(part, "text", "") for part in result.content))
        try:
            await session.call_tool("delete_report", {"name": "q3"})
        except MCPError as err:  # a refusal is a JSON-RPC error: the tool never ran
            print("tools/call delete_report: refused", *(err.data or {}).get("reasons", [err]))
        else:
            raise SystemExit("delete_report went through: check the playbook and policies")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--token-file", type=Path, default=Path("token"))
    parser.add_argument("--control-plane", default="http://127.0.0.1:8700")
    parser.add_argument("--gateway", default="http://127.0.0.1:8801/mcp")
    options = parser.parse_args()
    agent = Agent.attest(options.control_plane, join_token=options.token_file.read_text().strip())
    with agent.task(
        playbook="report-reader",
        intent="Summarize the Q3 report",
        audience=[options.gateway],  # RFC 8707: this gateway
    ) as task:
        anyio.run(use_tools, options.gateway, task)


if __name__ == "__main__":
    main()
