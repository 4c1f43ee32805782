"""The real bundled Claude Code CLI, driven against tests.support.fake_anthropic."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import claude_agent_sdk
import pytest
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ClaudeSDKClient,
    ResultMessage,
    create_sdk_mcp_server,
    tool,
)

from support.fake_anthropic import (
    TOOL_SEARCH,
    FakeAnthropic,
    HangReply,
    ToolUseReply,
    Turns,
    reply_error,
    reply_text,
    reply_tool_use,
)

BUNDLED_CLI = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
TURN_TIMEOUT = 60.0


@pytest.fixture
async def api() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def cli_env(api: FakeAnthropic, tmp_path: Path) -> dict[str, str]:
    # A private HOME and config dir keep the CLI off the real ~/.claude.
    home = tmp_path / "home"
    home.mkdir()
    return {**api.env(), "HOME": str(home), "CLAUDE_CONFIG_DIR": str(home / ".claude")}


def sdk_options(cli_env: dict[str, str], tmp_path: Path, **kwargs: Any) -> ClaudeAgentOptions:
    return ClaudeAgentOptions(cli_path=BUNDLED_CLI, cwd=tmp_path, env=cli_env, **kwargs)


async def run_turn(client: ClaudeSDKClient, prompt: str) -> list[Any]:
    await client.query(prompt)
    return await asyncio.wait_for(collect_response(client), TURN_TIMEOUT)


async def collect_response(client: ClaudeSDKClient) -> list[Any]:
    return [message async for message in client.receive_response()]


def result_of(messages: list[Any]) -> ResultMessage:
    assert messages, "no messages"
    assert isinstance(messages[-1], ResultMessage), messages[-1]
    return messages[-1]


async def run_print_mode(
    prompt: str, cli_env: dict[str, str], cwd: Path
) -> tuple[int, list[dict[str, Any]]]:
    # PATH only from the host: anything else (ANTHROPIC_*, CLAUDECODE) could
    # redirect or alter the CLI.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **cli_env}
    # The prompt goes first: flags taking several values would swallow it.
    proc = await asyncio.create_subprocess_exec(
        str(BUNDLED_CLI), "-p", prompt, "--output-format", "stream-json", "--verbose",
        env=env, cwd=cwd, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), TURN_TIMEOUT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await asyncio.wait_for(proc.wait(), 10)
    lines = [json.loads(line) for line in stdout.decode().splitlines() if line.strip()]
    assert lines, stderr.decode(errors="replace")
    return await proc.wait(), lines


async def test_print_mode_returns_fake_text(
    api: FakeAnthropic, cli_env: dict[str, str], tmp_path: Path
) -> None:
    api.script = Turns(reply_text("hello from the fake"))

    returncode, lines = await run_print_mode("hello", cli_env, tmp_path)

    result = lines[-1]
    assert (returncode, result["type"], result["is_error"]) == (0, "result", False)
    assert result["result"] == "hello from the fake"
    [request] = api.requests
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == "<redacted>"
    assert request.last_user_text().endswith("hello")


async def test_print_mode_reports_api_error_as_result(
    api: FakeAnthropic, cli_env: dict[str, str], tmp_path: Path
) -> None:
    api.script = Turns(reply_error(529, "overloaded_error", "fake overload"))

    returncode, lines = await run_print_mode("hello", cli_env, tmp_path)

    result = lines[-1]
    assert (returncode, result["type"], result["is_error"]) == (1, "result", True)
    assert result["api_error_status"] == 529
    assert "fake overload" in result["result"]
    assert len(api.requests) == 1, "CLAUDE_CODE_MAX_RETRIES=0 should stop retries"


async def test_sdk_mcp_tool_call_round_trip(
    api: FakeAnthropic, cli_env: dict[str, str], tmp_path: Path
) -> None:
    sent: list[dict[str, Any]] = []

    @tool("send", "Send a message to another agent", {"to": str, "body": str})
    async def send(args: dict[str, Any]) -> dict[str, Any]:
        sent.append(args)
        return {"content": [{"type": "text", "text": f"delivered to {args['to']}"}]}

    script = Turns(
        reply_tool_use("mcp__hive__send", {"to": "bob", "body": "x"}),
        reply_text("sent it"),
    )
    api.script = script
    options = sdk_options(
        cli_env,
        tmp_path,
        mcp_servers={"hive": create_sdk_mcp_server("hive", tools=[send])},
        allowed_tools=["mcp__hive__send"],
        system_prompt={"type": "preset", "preset": "claude_code", "append": "You are hive-a."},
    )

    async with ClaudeSDKClient(options) as client:
        messages = await run_turn(client, "tell bob x")

    result = result_of(messages)
    assert (result.is_error, result.result) == (False, "sent it")
    assert not result.permission_denials
    assert sent == [{"to": "bob", "body": "x"}]
    first, *_, last = api.turn_requests
    assert "You are hive-a." in first.system_text
    # MCP tools are deferred: the fake had to load it through ToolSearch first.
    assert TOOL_SEARCH in first.tool_names
    assert "mcp__hive__send" not in first.callable_tool_names
    calls = [r.calls[0].name for r in script.played if isinstance(r, ToolUseReply)]
    assert calls == [TOOL_SEARCH, "mcp__hive__send"]
    tool_result = last.last_tool_result()
    assert tool_result is not None
    assert last.tool_use_name(tool_result.tool_use_id) == "mcp__hive__send"
    assert tool_result.text == "delivered to bob"
    assert not tool_result.is_error


async def test_interrupt_mid_stream_then_next_turn(
    api: FakeAnthropic, cli_env: dict[str, str], tmp_path: Path
) -> None:
    hang = HangReply()
    api.script = Turns(hang, reply_text("back again"))

    async with ClaudeSDKClient(sdk_options(cli_env, tmp_path)) as client:
        await client.query("start something long")
        receiving = asyncio.create_task(collect_response(client))
        try:
            await asyncio.wait_for(hang.started.wait(), TURN_TIMEOUT)
            await asyncio.wait_for(client.interrupt(), 10)
            await asyncio.wait_for(hang.disconnected.wait(), 10)
            interrupted = result_of(await asyncio.wait_for(receiving, 10))
        finally:
            receiving.cancel()
        after = result_of(await run_turn(client, "are you there?"))

    assert interrupted.is_error
    assert interrupted.subtype == "error_during_execution"
    assert (after.is_error, after.result) == (False, "back again")
    assert "[Request interrupted by user]" in api.turn_requests[-1].last_user_text()


async def test_set_model_changes_requested_model(
    api: FakeAnthropic, cli_env: dict[str, str], tmp_path: Path
) -> None:
    api.script = Turns(reply_text("before"), reply_text("after"))

    async with ClaudeSDKClient(sdk_options(cli_env, tmp_path)) as client:
        assert result_of(await run_turn(client, "one")).result == "before"
        await asyncio.wait_for(client.set_model("claude-x-test"), 10)
        messages = await run_turn(client, "two")

    assert result_of(messages).result == "after"
    assert [m.model for m in messages if isinstance(m, AssistantMessage)] == ["claude-x-test"]
    before, after = api.turn_requests
    assert before.model != "claude-x-test"
    assert after.model == "claude-x-test"
    # set_model validates the model with a one-token probe the script never sees.
    probes = [r for r in api.requests if r.is_auxiliary]
    assert [(r.model, r.body.get("max_tokens")) for r in probes] == [("claude-x-test", 1)]
