"""The gateway's upstream connection: lists, calls, and reconnects after a restart."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from mcp_types import TextContent

from tests.gateway.mcp.harness import HttpUpstream, calls
from zerolane.errors import Unavailable
from zerolane.gateway.mcp.config import UpstreamConfig
from zerolane.gateway.mcp.upstream import Upstream


async def read(upstream: Upstream) -> str:
    result = await upstream.call_tool("read_report", {"name": "q3"}, {})
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


def test_an_upstream_is_reconnected_after_it_restarts(tmp_path: Path) -> None:
    log = tmp_path / "web.jsonl"
    first = HttpUpstream(log)
    config = UpstreamConfig(name="web", destination="web", url=first.url)
    upstream = Upstream(config, wait_seconds=20)

    async def main() -> None:
        async with anyio.create_task_group() as group:
            with first:
                await group.start(upstream.run)
                assert sorted(t.name for t in upstream.tools) == [
                    "delete_report",
                    "post_message",
                    "read_report",
                ]
                assert "Q3 revenue" in await read(upstream)
            with pytest.raises(Unavailable):  # the server is gone: the session is lost
                await upstream.refresh()
            second = HttpUpstream(log)
            second.port, second.url = first.port, first.url
            with second:
                assert "Q3 revenue" in await read(upstream)  # waits for the reconnect
            group.cancel_scope.cancel()

    anyio.run(main)
    assert len(calls(log, "read_report")) == 2
