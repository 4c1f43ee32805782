"""``hive-ag3nt mcp``: the hive tools for any MCP client, over stdio, with the
official ``mcp`` client against a real in-process core."""

from __future__ import annotations

import sys

from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.types import CallToolResult, TextContent

from hyperhive.core.hive import Hive


def text_of(result: CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


async def test_an_outside_mcp_client_sends_and_receives_as_its_agent(hive: Hive) -> None:
    await hive.add_agent("alice", ["bob"])
    await hive.add_agent("bob", None)
    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "hyperhive.daemons.ag3nt", "mcp", "--name", "alice", "--socket",
              str(hive.socket_path(hive.registry.get("alice")))],
    )  # fmt: skip
    async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        tools = {t.name for t in (await session.list_tools()).tools}
        assert tools == {"send", "recv"}
        sent = await session.call_tool("send", {"to": "bob", "body": "over stdio"})
        assert not sent.is_error and '"from": "alice"' in text_of(sent)
        refused = await session.call_tool("send", {"to": "operator", "body": "not allowed"})
        assert refused.is_error and "not_allowed" in text_of(refused)
        empty = await session.call_tool("recv", {"wait": 0})
        assert text_of(empty) == "null"
    assert [(m.sender, m.body) for m in hive.broker.history("bob", 5)] == [("alice", "over stdio")]
