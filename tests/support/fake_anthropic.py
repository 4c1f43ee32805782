"""A scriptable, in-process fake of the Anthropic Messages API.

The real Claude Code CLI is pointed at it with ``ANTHROPIC_BASE_URL`` (see
``FakeAnthropic.env``).  Observed CLI behaviour it is shaped around is written
up in docs/notes/claude-cli-fake-api.md.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeAlias

import uvicorn
from starlette.types import Receive, Scope, Send

log = logging.getLogger(__name__)

_SECRET_HEADERS = frozenset({"x-api-key", "authorization"})
TOOL_SEARCH = "ToolSearch"


@dataclass(frozen=True)
class ToolResult:
    tool_use_id: str
    text: str
    is_error: bool


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def model(self) -> str | None:
        model = self.body.get("model")
        return model if isinstance(model, str) else None

    @property
    def tools(self) -> list[dict[str, Any]]:
        return list(self.body.get("tools") or [])

    @property
    def tool_names(self) -> list[str]:
        return [str(t.get("name")) for t in self.tools]

    @property
    def callable_tool_names(self) -> list[str]:
        """Tools whose schema the model has; deferred ones need ToolSearch first."""
        return [str(t.get("name")) for t in self.tools if not t.get("defer_loading")]

    @property
    def system_text(self) -> str:
        system = self.body.get("system") or ""
        if isinstance(system, str):
            return system
        return "\n".join(str(b.get("text", "")) for b in system)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or [])

    def last_user_text(self) -> str:
        for msg in reversed(self.messages):
            if msg.get("role") == "user":
                return _content_text(msg.get("content"))
        return ""

    def tool_results(self) -> list[ToolResult]:
        found: list[ToolResult] = []
        for msg in self.messages:
            content = msg.get("content")
            if msg.get("role") != "user" or not isinstance(content, list):
                continue
            for block in content:
                if block.get("type") == "tool_result":
                    found.append(
                        ToolResult(
                            tool_use_id=str(block.get("tool_use_id")),
                            text=_content_text(block.get("content")),
                            is_error=bool(block.get("is_error", False)),
                        )
                    )
        return found

    def last_tool_result(self) -> ToolResult | None:
        results = self.tool_results()
        return results[-1] if results else None

    def tool_use_name(self, tool_use_id: str) -> str | None:
        for msg in self.messages:
            content = msg.get("content")
            if msg.get("role") == "assistant" and isinstance(content, list):
                for block in content:
                    if block.get("type") == "tool_use" and block.get("id") == tool_use_id:
                        return str(block.get("name"))
        return None

    @property
    def is_auxiliary(self) -> bool:
        """True for CLI side requests that are not a turn of the conversation.

        The main agent loop always streams and offers tools; the side requests
        observed (title / summary generation, probes) do neither.
        """
        return self.path != "/v1/messages" or not self.body.get("stream") or not self.tools


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(b.get("text", "")) for b in content if b.get("type") == "text")
    return ""


@dataclass(frozen=True)
class TextReply:
    text: str


@dataclass(frozen=True)
class ToolCall:
    name: str
    input: dict[str, Any]
    id: str | None = None


@dataclass(frozen=True)
class ToolUseReply:
    calls: tuple[ToolCall, ...]
    text: str | None = None


@dataclass(frozen=True)
class ErrorReply:
    """400s are not retried by the CLI; 429/5xx are, with backoff."""

    status: int
    error_type: str
    message: str


@dataclass
class HangReply:
    """Streams message_start plus ``partial_text``, then blocks until released.

    ``started`` is set once the partial stream is on the wire; ``disconnected``
    once the client goes away (what an interrupt looks like from the server).
    """

    partial_text: str = "thinking..."
    then: TextReply = field(default_factory=lambda: TextReply(" done"))
    started: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)


Reply: TypeAlias = TextReply | ToolUseReply | ErrorReply | HangReply
Script: TypeAlias = Callable[[RecordedRequest], Reply | Awaitable[Reply]]
_REPLY_TYPES = (TextReply, ToolUseReply, ErrorReply, HangReply)


def reply_text(text: str) -> TextReply:
    return TextReply(text)


def reply_tool_use(name: str, tool_input: dict[str, Any], *, text: str | None = None) -> ToolUseReply:
    return ToolUseReply((ToolCall(name, tool_input),), text)


def reply_error(
    status: int = 400, error_type: str = "invalid_request_error", message: str = "fake error"
) -> ErrorReply:
    return ErrorReply(status, error_type, message)


def tool_search_reply(names: list[str]) -> ToolUseReply:
    # The CLI accepts "select:A,B"; max_results is required by its schema.
    query = "select:" + ",".join(names)
    return reply_tool_use(TOOL_SEARCH, {"query": query, "max_results": len(names)})


def needs_tool_search(request: RecordedRequest, name: str) -> bool:
    return name not in request.callable_tool_names and TOOL_SEARCH in request.tool_names


class Turns:
    """A script that plays ``steps`` in order, one per main-loop request.

    Auxiliary requests get ``auxiliary`` and do not consume a step.  When a step
    calls a tool the CLI has deferred, a ToolSearch call that loads it is sent
    first and the step is replayed on the next request (a callable step is
    therefore invoked twice).  Once exhausted it answers with a 400 so the CLI
    run ends with an error result instead of hanging.
    """

    def __init__(
        self,
        *steps: Reply | Script,
        auxiliary: Reply | None = None,
        auto_tool_search: bool = True,
    ) -> None:
        self.steps: list[Reply | Script] = list(steps)
        self.auxiliary: Reply = auxiliary or TextReply("fake auxiliary reply")
        self.auto_tool_search = auto_tool_search
        self.played: list[Reply] = []

    async def __call__(self, request: RecordedRequest) -> Reply:
        if request.is_auxiliary:
            return self.auxiliary
        if not self.steps:
            return ErrorReply(400, "invalid_request_error", "fake-anthropic: script exhausted")
        step = self.steps[0]
        reply = step if isinstance(step, _REPLY_TYPES) else await _resolve(step, request)
        if self.auto_tool_search and isinstance(reply, ToolUseReply):
            missing = [c.name for c in reply.calls if needs_tool_search(request, c.name)]
            if missing:
                search = tool_search_reply(missing)
                self.played.append(search)
                return search
        self.steps.pop(0)
        self.played.append(reply)
        return reply


async def _resolve(script: Script, request: RecordedRequest) -> Reply:
    reply = script(request)
    if inspect.isawaitable(reply):
        reply = await reply
    return reply


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


class FakeAnthropic:
    """``async with FakeAnthropic(script) as api:`` serves on ``api.base_url``."""

    def __init__(self, script: Script | None = None) -> None:
        self.script: Script = script or Turns()
        self.requests: list[RecordedRequest] = []
        self._changed = asyncio.Condition()
        self._ids = itertools.count(1)
        self._hangs: list[HangReply] = []
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {
            "ANTHROPIC_BASE_URL": self.base_url,
            "ANTHROPIC_API_KEY": "sk-ant-fake-key",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        }

    @property
    def turn_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if not r.is_auxiliary]

    async def wait_for_request(
        self, predicate: Callable[[RecordedRequest], bool], timeout: float = 30.0
    ) -> RecordedRequest:
        def match() -> RecordedRequest | None:
            return next((r for r in reversed(self.requests) if predicate(r)), None)

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: match() is not None), timeout)
            found = match()
            assert found is not None
            return found

    async def start(self) -> None:
        # Binding before serving means the port is known and connections queue
        # in the backlog even before uvicorn's accept loop is running.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            interface="asgi3",
            lifespan="off",
            log_level="warning",
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))

    async def stop(self) -> None:
        for hang in self._hangs:
            hang.release.set()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, 10)

    async def __aenter__(self) -> FakeAnthropic:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        raw = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"_raw": raw.decode(errors="replace")}
        headers = {
            k.decode(): ("<redacted>" if k.decode() in _SECRET_HEADERS else v.decode())
            for k, v in scope["headers"]
        }
        request = RecordedRequest(scope["method"], scope["path"], headers, body)
        async with self._changed:
            self.requests.append(request)
            self._changed.notify_all()

        if request.method == "POST" and request.path == "/v1/messages/count_tokens":
            await _send_json(send, 200, {"input_tokens": len(raw) // 4})
        elif request.method == "POST" and request.path == "/v1/messages":
            reply = await _resolve(self.script, request)
            await self._answer(request, reply, receive, send)
        else:
            log.warning("fake-anthropic: unhandled %s %s", request.method, request.path)
            error = {"type": "not_found_error", "message": f"no route {request.path}"}
            await _send_json(send, 404, {"type": "error", "error": error})

    async def _answer(
        self, request: RecordedRequest, reply: Reply, receive: Receive, send: Send
    ) -> None:
        if isinstance(reply, ErrorReply):
            error = {"type": reply.error_type, "message": reply.message}
            await _send_json(send, reply.status, {"type": "error", "error": error})
            return
        msg_id = f"msg_fake_{next(self._ids):04d}"
        blocks = self._blocks(reply)
        stop_reason = "tool_use" if isinstance(reply, ToolUseReply) else "end_turn"
        if not request.body.get("stream"):
            message = self._message(msg_id, request.model, blocks, stop_reason)
            await _send_json(send, 200, message)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")],
            }
        )

        async def emit(chunk: bytes) -> None:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

        start = self._message(msg_id, request.model, [], None)
        await emit(_sse("message_start", {"type": "message_start", "message": start}))
        await emit(_sse("ping", {"type": "ping"}))
        if isinstance(reply, HangReply):
            if not await self._hang(reply, emit, receive):
                return
        for index, block in enumerate(blocks):
            for event, data in _block_events(index, block):
                await emit(_sse(event, data))
        delta = {"stop_reason": stop_reason, "stop_sequence": None}
        usage = {"output_tokens": 1 + len(json.dumps(blocks)) // 4}
        await emit(_sse("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
        await emit(_sse("message_stop", {"type": "message_stop"}))
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _hang(
        self, hang: HangReply, emit: Callable[[bytes], Awaitable[None]], receive: Receive
    ) -> bool:
        """Returns False if the client went away while hung."""
        self._hangs.append(hang)
        text_start = {"type": "text", "text": ""}
        await emit(_sse("content_block_start", {"type": "content_block_start", "index": 0,
                                                "content_block": text_start}))
        partial = {"type": "text_delta", "text": hang.partial_text}
        await emit(_sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                "delta": partial}))
        hang.started.set()
        # With the body fully read, uvicorn's receive() only returns on disconnect.
        released = asyncio.ensure_future(hang.release.wait())
        gone = asyncio.ensure_future(receive())
        done, pending = await asyncio.wait({released, gone}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if gone in done:
            hang.disconnected.set()
            return False
        rest = {"type": "text_delta", "text": hang.then.text}
        await emit(_sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                "delta": rest}))
        await emit(_sse("content_block_stop", {"type": "content_block_stop", "index": 0}))
        return True

    def _blocks(self, reply: Reply) -> list[dict[str, Any]]:
        if isinstance(reply, TextReply):
            return [{"type": "text", "text": reply.text}]
        if isinstance(reply, ToolUseReply):
            blocks: list[dict[str, Any]] = []
            if reply.text:
                blocks.append({"type": "text", "text": reply.text})
            for call in reply.calls:
                call_id = call.id or f"toolu_fake_{next(self._ids):04d}"
                blocks.append(
                    {"type": "tool_use", "id": call_id, "name": call.name, "input": call.input}
                )
            return blocks
        # A hang's own blocks are streamed by _hang; nothing follows them.
        return []

    @staticmethod
    def _message(
        msg_id: str, model: str | None, blocks: list[dict[str, Any]], stop_reason: str | None
    ) -> dict[str, Any]:
        return {
            "id": msg_id,
            "type": "message",
            "role": "assistant",
            "model": model or "claude-fake",
            "content": blocks,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 1 if stop_reason is None else 5},
        }


def _block_events(index: int, block: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    if block["type"] == "tool_use":
        start = {**block, "input": {}}
        delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
    else:
        start = {"type": "text", "text": ""}
        delta = {"type": "text_delta", "text": block["text"]}
    return [
        ("content_block_start", {"type": "content_block_start", "index": index,
                                 "content_block": start}),
        ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}),
        ("content_block_stop", {"type": "content_block_stop", "index": index}),
    ]


async def _send_json(send: Send, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
