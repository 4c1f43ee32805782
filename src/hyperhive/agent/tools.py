"""The hive tools the model uses, answered by the core over the agent's socket.

One table (:data:`TOOLS`: name, description, schema, roles, op) serves both
frontends and the list of names the engine grants: the in-process SDK MCP server
named ``hive`` that the Claude engine mounts (the model sees ``mcp__hive__send``),
and ``hive-ag3nt mcp``, which runs the very same ``mcp`` server over stdio for
any outside MCP client. Errors from the core reach the model as tool
errors carrying the core's message.

Each ``send`` carries a key of its own, so when the connection dies before the
answer (the core restarting) the same send is tried again and stored once.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from hyperhive.client import RETRY_PAUSES, Client, call_retrying
from hyperhive.errors import HiveError

if TYPE_CHECKING:
    from claude_agent_sdk import SdkMcpTool
    from claude_agent_sdk.types import McpSdkServerConfig

SERVER: Final = "hive"
MAX_TOOL_WAIT: Final = 300.0


def allowed_tools(names: list[str]) -> list[str]:
    return [f"mcp__{SERVER}__{n}" for n in names]


def _schema(props: dict[str, tuple[str, str]], required: tuple[str, ...]) -> dict[str, Any]:
    """A JSON Schema; the SDK's dict shorthand would make every field required."""
    properties: dict[str, Any] = {}
    for name, (kind, text) in props.items():
        properties[name] = {"type": kind, "description": text}
        if kind == "array":
            properties[name]["items"] = {"type": "string"}
    return {"type": "object", "properties": properties, "required": list(required)}


def _text(value: Any, *, error: bool = False) -> dict[str, Any]:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    answer: dict[str, Any] = {"content": [{"type": "text", "text": text}]}
    if error:
        answer["is_error"] = True
    return answer


# The op's arguments from the model's input, or the text of a tool error.
Arguments = Callable[[dict[str, Any]], dict[str, Any] | str]
EVERYONE: Final = frozenset({"agent", "manager"})
MANAGER: Final = frozenset({"manager"})


@dataclass(frozen=True, slots=True)
class HiveTool:
    name: str
    description: str
    schema: dict[str, Any]
    roles: frozenset[str]  # "agent" is every role but the manager's
    op: str  # the core op the tool calls
    arguments: Arguments

    def serves(self, role: str) -> bool:
        return ("manager" if role == "manager" else "agent") in self.roles


def _recv(args: dict[str, Any]) -> dict[str, Any] | str:
    wait = args.get("wait", 0)
    if not isinstance(wait, int | float) or isinstance(wait, bool):
        return "bad_request: wait must be a number"
    return {"wait": min(max(float(wait), 0.0), MAX_TOOL_WAIT)}


def _fields(*names: str) -> Arguments:
    return lambda args: {name: args.get(name) for name in names}


def _lifecycle(op: str, text: str) -> HiveTool:
    schema = _schema({"name": ("string", "the agent")}, required=("name",))
    return HiveTool(op, text, schema, MANAGER, op, _fields("name"))


TOOLS: Final = (
    HiveTool(
        "send",
        "Send a message to another participant of the hive (an agent, hm1nd, or operator).",
        _schema(
            {"to": ("string", "recipient name"), "body": ("string", "the message text")},
            required=("to", "body"),
        ),
        EVERYONE,
        "send",
        _fields("to", "body"),
    ),
    HiveTool(
        "recv",
        "Receive your next message, waiting up to `wait` seconds (0 = don't wait). "
        "Returns null when there is none.",
        _schema({"wait": ("number", "seconds to wait, 0-300 (default 0)")}, required=()),
        EVERYONE,
        "recv",
        _recv,
    ),
    HiveTool(
        "request_spawn",
        "Ask the operator to approve a new agent. `config` is an optional agent.toml "
        "(role, model, allow_send, [sandbox]). You get approval_decided in your inbox.",
        _schema(
            {
                "name": ("string", "1-9 chars: a-z first, then a-z 0-9 -"),
                "reason": ("string", "why the swarm needs it"),
                "config": ("string", "agent.toml text; omit for the default"),
                "host": ("string", "the host to run it on; omit to let the hive choose"),
            },
            required=("name", "reason"),
        ),
        MANAGER,
        "request_spawn",
        lambda args: {
            "name": args.get("name"),
            "reason": args.get("reason"),
            "config": args.get("config") or None,
            **({"host": args["host"]} if args.get("host") else {}),
        },
    ),
    HiveTool(
        "request_apply_commit",
        "Ask the operator to apply a commit of /agents/<name>/config (commit it first "
        "with git). Exactly that commit is applied and the agent restarts on it.",
        _schema(
            {
                "name": ("string", "the agent"),
                "sha": ("string", "the commit"),
                "reason": ("string", "what changes and why"),
            },
            required=("name", "sha", "reason"),
        ),
        MANAGER,
        "request_apply_commit",
        _fields("name", "sha", "reason"),
    ),
    HiveTool(
        "ask_operator",
        "Ask the human operator a question. With `options` it is a choice (radio, or "
        "checkboxes with multi=true); without, free text. The answer arrives later in "
        "your inbox as operator_answered.",
        _schema(
            {
                "question": ("string", "the question"),
                "options": ("array", "choices; omit for a free-text answer"),
                "multi": ("boolean", "allow several choices (default false)"),
            },
            required=("question",),
        ),
        MANAGER,
        "ask_operator",
        lambda args: {
            "question": args.get("question"),
            "options": args.get("options") or None,
            "multi": bool(args.get("multi")),
        },
    ),
    _lifecycle("start", "Start a stopped agent now."),
    _lifecycle("kill", "Stop an agent now (it stays stopped until started)."),
    _lifecycle("restart", "Restart an agent now."),
)


def tools_for(role: str) -> list[HiveTool]:
    return [spec for spec in TOOLS if spec.serves(role)]


class HiveTools:
    """Tool handlers bound to one agent's socket (its identity)."""

    def __init__(
        self, socket: Path, role: str = "agent", *, retry_pauses: tuple[float, ...] = RETRY_PAUSES
    ) -> None:
        self.socket = socket
        self.role = role
        self._retry_pauses = retry_pauses

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in tools_for(self.role)]

    async def call(self, op: str, **args: Any) -> dict[str, Any]:
        # A connection per call: a long recv must not hold up a send.
        try:
            if op == "send":
                # One key per tool call: its retries are one message, a new call a new one.
                args.setdefault("key", uuid.uuid4().hex)
                sent = await call_retrying(self.socket, op, pauses=self._retry_pauses, **args)
                return _text(sent)
            async with await Client.connect(self.socket) as client:
                return _text(await client.call(op, **args))
        except HiveError as exc:
            return _text(f"{getattr(exc, 'code', 'error')}: {exc.message}", error=True)

    def definitions(self) -> list[SdkMcpTool[Any]]:
        # Imported here: the SDK (and mcp, pydantic) cost ~45 MiB that an
        # agent which has not yet run a turn should not pay.
        from claude_agent_sdk import tool

        return [
            tool(spec.name, spec.description, spec.schema)(self._handler(spec))
            for spec in tools_for(self.role)
        ]

    def _handler(self, spec: HiveTool) -> Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]:
        async def handle(args: dict[str, Any]) -> dict[str, Any]:
            arguments = spec.arguments(args)
            if isinstance(arguments, str):
                return _text(arguments, error=True)
            return await self.call(spec.op, **arguments)

        return handle

    def sdk_server(self) -> McpSdkServerConfig:
        from claude_agent_sdk import create_sdk_mcp_server

        return create_sdk_mcp_server(SERVER, tools=self.definitions())


async def serve_stdio(tools: HiveTools) -> None:
    """Serve the same tools as a stdio MCP server (``hive-ag3nt mcp``)."""
    from mcp.server.stdio import stdio_server

    server = tools.sdk_server()["instance"]
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())
