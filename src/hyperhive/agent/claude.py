"""The real engine: Claude Code through ``claude-agent-sdk``'s ``ClaudeSDKClient``.

One long-lived CLI process serves turns while the agent is busy; after
``idle_seconds`` without a turn it is closed, and the next turn starts a new
one that resumes the session by the id kept in ``/state/session-id``. The hive
tools are an in-process SDK MCP server, granted with ``allowed_tools``, never
by bypassing permissions. The agent's tool policy (from the core) becomes the
CLI's permission rules and its set of built-in tools; whatever the CLI cannot
decide from those rules it asks :class:`~hyperhive.agent.permissions.Gate`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import warnings
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, Final

from claude_agent_sdk import (
    AssistantMessage,
    CanUseToolShadowedWarning,
    ClaudeAgentOptions,
    ClaudeSDKClient,
    ClaudeSDKError,
    ResultMessage,
    SystemMessage,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
)

from hyperhive.agent.api_forward import LOOPBACK, ApiForwarder
from hyperhive.agent.engine import EngineError, EngineEvent, EngineUnavailable
from hyperhive.agent.permissions import Ask, Gate, core_ask
from hyperhive.agent.prompts import system_prompt
from hyperhive.agent.settings import AgentSettings
from hyperhive.agent.tools import HiveTools, allowed_tools
from hyperhive.secret_env import is_secret_name
from hyperhive.tool_defaults import BUILTINS, INFRASTRUCTURE
from hyperhive.tool_match import FILE_EDIT, FILE_READ, Where
from hyperhive.tool_rules import Rule, ToolPolicy

log = logging.getLogger(__name__)
AUTH_STATUSES: Final = frozenset({401, 403})
# What the CLI says (AssistantMessage.error) when it has no credentials or they are
# refused: "Not logged in · Please run /login" comes with no HTTP status at all.
AUTH_FAILED: Final = "authentication_failed"
TOOL_RESULT_LIMIT: Final = 4000
MISSING_SESSION: Final = "No conversation found"
# Forwarded from the harness's environment into the CLI's; nothing else is
# chosen for it here (the SDK passes the rest of os.environ through).
FORWARD_PREFIXES: Final = ("CLAUDE_CODE_", "CLAUDE_CONFIG_DIR")
# Without the core's gateway (a harness run by hand), the CLI's own API settings too.
DIRECT_PREFIXES: Final = ("ANTHROPIC_",)
# What the CLI sends as its key behind the gateway: no secret, the gateway drops it and
# authenticates the request with the credential only the core holds.
GATEWAY_KEY: Final = "hyperhive-gateway"


class ClaudeEngine:
    def __init__(
        self,
        settings: AgentSettings,
        tools: HiveTools,
        *,
        role: str | None = None,
        env: Mapping[str, str] | None = None,
        cli_path: Path | None = None,
        ask: Ask | None = None,
    ) -> None:
        self._settings = settings
        self._tools = tools
        self._role = role
        self._env = dict(os.environ if env is None else env)
        self._cli_path = cli_path
        # How the permission gate asks the core about an ``ask`` call (its tool_use op).
        self._ask = ask or core_ask(settings.socket)
        self._client: ClaudeSDKClient | None = None
        self._model: str | None = None
        self._session: str | None = self._read_session()
        self._idle: asyncio.TimerHandle | None = None
        self._idle_close: asyncio.Task[None] | None = None
        # The CLI's word for the API error of the running turn, if it had one.
        self._api_error: str | None = None
        # The CLI's way to the core's gateway, open while a CLI runs (None: no gateway).
        self._forwarder = None if settings.api_socket is None else ApiForwarder(settings.api_socket)

    @property
    def session_id(self) -> str | None:
        return self._session

    @property
    def model(self) -> str | None:
        return self._model

    def _read_session(self) -> str | None:
        try:
            return self._settings.session_file.read_text().strip() or None
        except FileNotFoundError:
            return None

    def _remember_session(self, session: str) -> None:
        if session == self._session:
            return
        self._session = session
        try:
            self._settings.session_file.parent.mkdir(parents=True, exist_ok=True)
            self._settings.session_file.write_text(session + "\n")
        except OSError as exc:
            log.warning("cannot persist the session id: %s", exc.strerror)

    def _options(self, gateway_port: int | None) -> ClaudeAgentOptions:
        env = engine_env(self._env, os.environ, gateway_port)
        env["CLAUDE_CONFIG_DIR"] = str(self._settings.claude_dir)
        self._settings.state_dir.mkdir(parents=True, exist_ok=True)
        self._settings.workspace.mkdir(parents=True, exist_ok=True)
        return ClaudeAgentOptions(
            system_prompt={
                "type": "preset",
                "preset": "claude_code",
                "append": system_prompt(
                    self._settings.name,
                    self._role,
                    manager=self._settings.role == "manager",
                    tools=self._settings.tools,
                ),
            },
            mcp_servers={"hive": self._tools.sdk_server()},
            # Only the hive server: a workspace's .mcp.json would add others.
            strict_mcp_config=True,
            allowed_tools=allowed_tools(self._tools.names),
            **permission_options(self._settings.tools),
            can_use_tool=Gate(
                self._settings.tools,
                self._ask,
                Where(cwd=str(self._settings.workspace), home=self._env.get("HOME") or "/root"),
            ),
            # No settings files: a cloned workspace's .claude/settings.json (or
            # one the agent writes itself) could widen its rules or add hooks.
            setting_sources=[],
            resume=self._session,
            model=self._model,
            env=env,
            cwd=self._settings.workspace,
            # Its durable notes, and for the manager every agent's config repo.
            add_dirs=[
                self._settings.state_dir,
                *([self._settings.agents_dir] if self._settings.agents_dir else []),
            ],
            cli_path=self._cli_path,
        )

    async def _connected(self) -> ClaudeSDKClient:
        if self._client is None:
            try:
                self._client = await self._connect()
            except ClaudeSDKError as exc:
                if self._session is None or MISSING_SESSION not in str(exc):
                    raise EngineUnavailable(f"cannot start Claude Code: {exc}") from exc
                # The transcript is gone (deleted, or never written): start afresh
                # rather than failing every turn from now on.
                log.warning("session %s cannot be resumed; starting a new one", self._session)
                self._forget_session()
                try:
                    self._client = await self._connect()
                except ClaudeSDKError as again:
                    raise EngineUnavailable(f"cannot start Claude Code: {again}") from again
        return self._client

    async def _connect(self) -> ClaudeSDKClient:
        port = None if self._forwarder is None else await self._forwarder.start()
        client = ClaudeSDKClient(self._options(port))
        with warnings.catch_warnings():
            # Whole-tool allow rules never reach can_use_tool, the SDK warns:
            # that is their point (the CLI runs allowed calls unasked).
            warnings.simplefilter("ignore", CanUseToolShadowedWarning)
            await client.connect()
        return client

    def _forget_session(self) -> None:
        self._session = None
        self._settings.session_file.unlink(missing_ok=True)

    async def turn(self, prompt: str) -> AsyncIterator[EngineEvent]:
        if self._idle is not None:
            self._idle.cancel()
        self._api_error = None
        client = await self._connected()
        try:
            await client.query(prompt)
            async for message in client.receive_response():
                for event in self._translate(message):
                    yield event
        except ClaudeSDKError as exc:
            # The CLI died or spoke nonsense: drop it, the next turn resumes.
            await self.close()
            raise EngineError(f"Claude Code failed: {exc}") from exc
        finally:
            self._idle = asyncio.get_running_loop().call_later(
                self._settings.idle_seconds, self._close_when_idle
            )

    def _close_when_idle(self) -> None:
        # Keep a reference: a task nobody holds may be collected mid-close.
        self._idle_close = asyncio.get_running_loop().create_task(self.close())

    def _translate(self, message: object) -> list[EngineEvent]:
        if isinstance(message, SystemMessage):
            data = {"subtype": message.subtype}
            for key in ("session_id", "model", "cwd"):
                if key in message.data:
                    data[key] = message.data[key]
            return [EngineEvent("system", data)]
        if isinstance(message, AssistantMessage):
            if message.error is not None:
                self._api_error = message.error
            return [e for block in message.content if (e := _assistant_block(block))]
        if isinstance(message, UserMessage) and isinstance(message.content, list):
            return [
                EngineEvent(
                    "tool_result",
                    {
                        "tool_use_id": b.tool_use_id,
                        "content": _flatten(b.content)[:TOOL_RESULT_LIMIT],
                        "is_error": bool(b.is_error),
                    },
                )
                for b in message.content
                if isinstance(b, ToolResultBlock)
            ]
        if isinstance(message, ResultMessage):
            # Only a finished turn proves the transcript exists and can be resumed.
            self._remember_session(message.session_id)
            usage: dict[str, Any] = message.usage or {}
            # What agent/failures.py needs to tell a login or an API outage from the rest.
            api_error = self._api_error if message.is_error else None
            auth = message.api_error_status in AUTH_STATUSES or api_error == AUTH_FAILED
            return [
                EngineEvent(
                    "result",
                    {
                        "is_error": message.is_error,
                        "subtype": message.subtype,
                        "text": message.result or message.subtype,
                        "cost_usd": message.total_cost_usd,
                        "input_tokens": usage.get("input_tokens"),
                        "output_tokens": usage.get("output_tokens"),
                        "duration_ms": message.duration_ms,
                        "session_id": message.session_id,
                        "permission_denials": message.permission_denials or [],
                        "auth_error": message.is_error and auth,
                        "api_error_status": message.api_error_status,
                        "api_error": api_error,
                    },
                )
            ]
        return []

    async def interrupt(self) -> None:
        if self._client is not None:
            await self._client.interrupt()

    async def set_model(self, model: str | None) -> None:
        self._model = model
        if self._client is not None:
            await self._client.set_model(model)

    async def close(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(ClaudeSDKError, OSError):
                await client.disconnect()
        if self._forwarder is not None:
            await self._forwarder.close()


def engine_env(
    env: Mapping[str, str], inherited: Mapping[str, str], gateway_port: int | None
) -> dict[str, str]:
    """The CLI's env settings from the harness's ``env``. Behind the gateway
    (``gateway_port``): its address and a placeholder key, and every secret-looking
    variable of ``env`` or of the process env the SDK passes through (``inherited``)
    blanked, so the CLI and every tool it runs see no credential at all."""
    if gateway_port is None:
        return {k: v for k, v in env.items() if k.startswith((*FORWARD_PREFIXES, *DIRECT_PREFIXES))}
    chosen = {
        k: v for k, v in env.items() if k.startswith(FORWARD_PREFIXES) and not is_secret_name(k)
    }
    chosen |= {k: "" for k in (*env, *inherited) if is_secret_name(k)}
    chosen["ANTHROPIC_BASE_URL"] = f"http://{LOOPBACK}:{gateway_port}"
    chosen["ANTHROPIC_API_KEY"] = GATEWAY_KEY
    return chosen


def permission_options(policy: ToolPolicy) -> dict[str, Any]:
    """The CLI's side of ``policy``: its permission rules, and its built-in tools.

    The rules go in as flag settings rather than ``--allowedTools``, whose
    tokenizer splits on commas and parentheses a specifier may hold. A built-in
    that no allow or ask rule names is not offered at all: the CLI would run
    some calls of it unasked (reading in the cwd, read-only shell commands).
    """

    def texts(rules: tuple[Rule, ...] | None) -> list[str]:
        return [str(r) for r in rules or ()]

    offered: set[str] = set(INFRASTRUCTURE)
    for rule in (*(policy.allow or ()), *(policy.ask or ())):
        family = {"Edit": FILE_EDIT, "Read": FILE_READ}.get(rule.tool, {rule.tool})
        offered |= family if rule.specifier is not None else {rule.tool}
    settings = {
        "permissions": {
            "allow": texts(policy.allow),
            "ask": texts(policy.ask),
            "deny": texts(policy.deny),
        }
    }
    return {
        "tools": [t for t in BUILTINS if t in offered or (t == "Agent" and "Task" in offered)],
        "settings": json.dumps(settings),
    }


def _assistant_block(block: object) -> EngineEvent | None:
    if isinstance(block, TextBlock):
        return EngineEvent("assistant", {"text": block.text})
    if isinstance(block, ToolUseBlock):
        return EngineEvent("tool_use", {"id": block.id, "name": block.name, "input": block.input})
    return None


def _flatten(content: str | list[dict[str, Any]] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(str(part.get("text", part)) for part in content)
