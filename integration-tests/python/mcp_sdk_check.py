"""Drives Switchboard with the official MCP Python SDK client.

Usage:
    mcp_sdk_check.py http URL
    mcp_sdk_check.py stdio COMMAND [ARG...]

Initializes a session, lists the tools, calls `test_simple_text`, reads
`test://static-text`, renders `test_prompt_with_arguments` and completes one of
its arguments, then prints one JSON object with what it saw. The Rust test that
runs it (integration-tests/tests/all/conformance.rs) asserts on that JSON; any
protocol error makes this script exit non-zero with the error on stderr.
"""

import asyncio
import json
import os
import sys
from contextlib import AsyncExitStack

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import PromptReference


async def exercise(session: ClientSession) -> dict:
    init = await session.initialize()
    tools = await session.list_tools()
    call = await session.call_tool("test_simple_text", {})
    resource = await session.read_resource("test://static-text")
    prompt = await session.get_prompt(
        "test_prompt_with_arguments", {"arg1": "a", "arg2": "b"}
    )
    completion = await session.complete(
        PromptReference(type="ref/prompt", name="test_prompt_with_arguments"),
        {"name": "arg1", "value": "par"},
    )
    return {
        "protocol_version": str(init.protocol_version),
        "server_name": init.server_info.name,
        "tools": sorted(t.name for t in tools.tools),
        "call_text": call.content[0].text if call.content else None,
        "call_is_error": bool(call.is_error),
        "resource_text": resource.contents[0].text,
        "prompt_text": prompt.messages[0].content.text,
        "completions": completion.completion.values,
    }


async def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] not in ("http", "stdio"):
        print(__doc__, file=sys.stderr)
        return 2
    async with AsyncExitStack() as stack:
        if argv[1] == "http":
            streams = await stack.enter_async_context(streamable_http_client(argv[2]))
        else:
            # The SDK passes only a minimal environment unless told otherwise.
            params = StdioServerParameters(command=argv[2], args=argv[3:], env=dict(os.environ))
            streams = await stack.enter_async_context(stdio_client(params))
        session = await stack.enter_async_context(ClientSession(streams[0], streams[1]))
        seen = await exercise(session)
    print(json.dumps(seen))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv)))
