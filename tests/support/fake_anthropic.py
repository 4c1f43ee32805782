"""A scriptable, in-process fake of the Anthropic Messages API.

Point the real Claude Code CLI at it with ``FakeAnthropic.env()``; script it
with e.g. ``Turns(reply_tool_use("mcp__hive__send", {...}), reply_text("done"))``.
The CLI behaviour it is shaped around: docs/notes/claude-cli-fake-api.md.

For the gateway's tests it also reports what it billed (``usage=`` on a reply, cache
tokens included; ``served_usage``), answers a storm of 529s on demand (``storm``),
counts the requests it is answering (``in_flight``, ``max_in_flight``), and keeps the
auth headers it got in ``RecordedRequest.auth`` (never in a repr).
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
from typing import Any, TypeAlias

import uvicorn
from starlette.types import Receive, Scope, Send

log = logging.getLogger(__name__)

TOOL_SEARCH = "ToolSearch"
_SECRET_HEADERS = frozenset({"x-api-key", "authorization"})


@dataclass(frozen=True)
class ToolResult:
    tool_use_id: str
    text: str
    is_error: bool


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # API key headers are redacted
    body: dict[str, Any]
    # The auth headers as sent, for tests that check whose key came (never printed).
    auth: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

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
        """Tools the model may call now.

        Deferred tools (MCP ones, by default) are absent from ``tools`` until a
        ToolSearch result names them in a ``tool_reference`` block; from then on
        the CLI sends them with ``defer_loading: true`` and the real API expands
        them from that reference.
        """
        referenced = {
            str(ref.get("tool_name"))
            for block in self._blocks("user", "tool_result")
            if isinstance(block.get("content"), list)
            for ref in block["content"]
            if ref.get("type") == "tool_reference"
        }
        return [
            str(t.get("name"))
            for t in self.tools
            if not t.get("defer_loading") or t.get("name") in referenced
        ]

    @property
    def system_text(self) -> str:
        system = self.body.get("system") or ""
        return system if isinstance(system, str) else _content_text(system)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or [])

    @property
    def is_auxiliary(self) -> bool:
        """True for CLI side requests that are not a step of the agent loop.

        Agent-loop requests always stream and offer tools; the side requests
        seen (e.g. the ``max_tokens: 1`` "Hi" probe after set_model) do neither.
        """
        return self.path != "/v1/messages" or not self.body.get("stream") or not self.tools

    def last_user_text(self) -> str:
        users = [m for m in self.messages if m.get("role") == "user"]
        return _content_text(users[-1].get("content")) if users else ""

    def tool_results(self) -> list[ToolResult]:
        return [
            ToolResult(
                tool_use_id=str(block.get("tool_use_id")),
                text=_content_text(block.get("content")),
                is_error=bool(block.get("is_error", False)),
            )
            for block in self._blocks("user", "tool_result")
        ]

    def last_tool_result(self) -> ToolResult | None:
        results = self.tool_results()
        return results[-1] if results else None

    def tool_use_name(self, tool_use_id: str) -> str | None:
        for block in self._blocks("assistant", "tool_use"):
            if block.get("id") == tool_use_id:
                return str(block.get("name"))
        return None

    def _blocks(self, role: str, block_type: str) -> list[dict[str, Any]]:
        return [
            block
            for msg in self.messages
            if msg.get("role") == role and isinstance(msg.get("content"), list)
            for block in msg["content"]
            if block.get("type") == block_type
        ]


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(b.get("text", "")) for b in content if b.get("type") == "text")
    return ""


# What a reply reports it used unless told otherwise (the API's ``usage`` fields).
DEFAULT_USAGE: dict[str, int] = {"input_tokens": 10, "output_tokens": 5}


@dataclass(frozen=True)
class TextReply:
    text: str
    usage: dict[str, int] | None = None  # None: DEFAULT_USAGE


@dataclass(frozen=True)
class ToolCall:
    name: str
    input: dict[str, Any]
    id: str | None = None


@dataclass(frozen=True)
class ToolUseReply:
    calls: tuple[ToolCall, ...]
    text: str | None = None
    usage: dict[str, int] | None = None


@dataclass(frozen=True)
class ErrorReply:
    """An HTTP error carrying the API's error JSON.

    The CLI retries 408/429/5xx with backoff unless CLAUDE_CODE_MAX_RETRIES=0
    (which ``FakeAnthropic.env`` sets).  It answers a 400 by re-sending up to 5
    more times with fewer betas, and a 404 once more; those consume script
    steps.  401/403/413/429/500/529 end the turn after a single request.
    """

    status: int
    error_type: str
    message: str
    headers: tuple[tuple[str, str], ...] = ()  # e.g. retry-after, request-id


@dataclass
class HangReply:
    """Streams message_start and ``partial_text``, then blocks until released.

    ``started`` is set once the partial text is on the wire and
    ``disconnected`` when the client drops the request (how an interrupt looks
    from the server); ``release`` finishes the message with ``then_text``.
    """

    partial_text: str = "working on it"
    then_text: str = " ...done"
    started: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    usage: dict[str, int] | None = None


Reply: TypeAlias = TextReply | ToolUseReply | ErrorReply | HangReply
Script: TypeAlias = Callable[[RecordedRequest], Reply | Awaitable[Reply]]
_REPLY_TYPES = (TextReply, ToolUseReply, ErrorReply, HangReply)


def reply_text(text: str, *, usage: dict[str, int] | None = None) -> TextReply:
    return TextReply(text, usage)


def reply_tool_use(
    name: str,
    tool_input: dict[str, Any],
    *,
    text: str | None = None,
    usage: dict[str, int] | None = None,
) -> ToolUseReply:
    return ToolUseReply((ToolCall(name, tool_input),), text, usage)


def reply_error(
    status: int = 500,
    error_type: str = "api_error",
    message: str = "fake error",
    *,
    headers: tuple[tuple[str, str], ...] = (),
) -> ErrorReply:
    return ErrorReply(status, error_type, message, headers)


def tool_search_reply(names: list[str]) -> ToolUseReply:
    # The form the CLI's own prompt recommends; its schema requires max_results.
    query = "select:" + ",".join(names)
    return reply_tool_use(TOOL_SEARCH, {"query": query, "max_results": len(names)})


def needs_tool_search(request: RecordedRequest, name: str) -> bool:
    return name not in request.callable_tool_names and TOOL_SEARCH in request.tool_names


class Turns:
    """A script playing ``steps`` in order, one per agent-loop request.

    Auxiliary requests get ``auxiliary`` and consume no step.  When a step calls
    a tool the CLI has deferred, a ToolSearch call loading it goes out first and
    the step is replayed on the next request (so a callable step runs twice).
    Once exhausted it answers 500, ending the CLI turn with an error result.
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
        self._searched = False

    async def __call__(self, request: RecordedRequest) -> Reply:
        if request.is_auxiliary:
            return self.auxiliary
        if not self.steps:
            return ErrorReply(500, "api_error", "fake-anthropic: script exhausted")
        step = self.steps[0]
        reply = step if isinstance(step, _REPLY_TYPES) else await _resolve(step, request)
        if self.auto_tool_search and isinstance(reply, ToolUseReply) and not self._searched:
            missing = [c.name for c in reply.calls if needs_tool_search(request, c.name)]
            if missing:
                # Once per step: should the CLI still not list the tool, the
                # real call then fails visibly instead of searching forever.
                self._searched = True
                self.played.append(tool_search_reply(missing))
                return self.played[-1]
        self._searched = False
        self.steps.pop(0)
        self.played.append(reply)
        return reply


class Router:
    """One fake API for several agents: a request goes to the script of the agent
    whose system prompt says "You are <name>,"; anything else is auxiliary."""

    def __init__(self, **scripts: Turns) -> None:
        self.scripts = scripts

    async def __call__(self, request: RecordedRequest) -> Reply:
        for name, script in self.scripts.items():
            if f"You are {name}," in request.system_text:
                return await script(request)
        return TextReply("fake auxiliary reply")


async def _resolve(script: Script, request: RecordedRequest) -> Reply:
    reply = script(request)
    return await reply if inspect.isawaitable(reply) else reply


def _sse(event: str, **data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps({'type': event, **data})}\n\n".encode()


class FakeAnthropic:
    """``async with FakeAnthropic(script) as api:`` serves on ``api.base_url``.

    ``script`` may be swapped between turns; it defaults to an empty ``Turns``.
    """

    def __init__(self, script: Script | None = None) -> None:
        self.script: Script = script or Turns()
        self.requests: list[RecordedRequest] = []
        self.script_errors: list[Exception] = []
        self.port = 0
        self._changed = asyncio.Condition()
        self._ids = itertools.count(1)
        self._hangs: list[HangReply] = []
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        # Seconds every /v1/messages answer takes before its head: the network and the
        # model, so that concurrent requests overlap as they do against the real API.
        self.latency = 0.0
        self.in_flight = 0  # requests being answered now
        self.max_in_flight = 0
        self.served_usage: list[dict[str, int]] = []  # each 2xx message's usage, in order
        self.storm_answers = 0  # 529s (or so) answered by storms
        self._storm: _Storm | None = None

    def storm(
        self,
        requests: int | None = None,
        *,
        retry_after: str | None = "1",
        status: int = 529,
        error_type: str = "overloaded_error",
    ) -> None:
        """The next ``requests`` requests to /v1/messages (None: all, until
        :meth:`end_storm`) answer ``status`` with a ``retry-after`` header, without
        playing the script."""
        self._storm = _Storm(requests, retry_after, status, error_type)

    def end_storm(self) -> None:
        self._storm = None

    def _storm_reply(self) -> ErrorReply | None:
        storm = self._storm
        if storm is None:
            return None
        if storm.left is not None:
            storm.left -= 1
            if storm.left <= 0:
                self._storm = None
        self.storm_answers += 1
        headers = (("retry-after", storm.retry_after),) if storm.retry_after is not None else ()
        return ErrorReply(storm.status, storm.error_type, "fake-anthropic: storm", headers)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {
            "ANTHROPIC_BASE_URL": self.base_url,
            "ANTHROPIC_API_KEY": "sk-ant-fake-key",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            # Otherwise a scripted 5xx is retried with backoff for minutes.
            "CLAUDE_CODE_MAX_RETRIES": "0",
        }

    @property
    def turn_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if not r.is_auxiliary]

    async def wait_for_request(
        self, predicate: Callable[[RecordedRequest], bool]
    ) -> RecordedRequest:
        """The newest matching request, once there is one; callers bound the wait."""

        def match() -> RecordedRequest | None:
            return next((r for r in reversed(self.requests) if predicate(r)), None)

        async with self._changed:
            await self._changed.wait_for(lambda: match() is not None)
        found = match()
        assert found is not None
        return found

    async def start(self) -> None:
        # Bound before uvicorn runs, so the port is known at once and early
        # connections wait in the backlog instead of being refused.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # Inherited by every accepted connection: an answer is written in several
        # pieces, and without it each waits for the client's delayed ACK (40 ms).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app, interface="asgi3", lifespan="off", log_level="warning",
            timeout_graceful_shutdown=2,
        )  # fmt: skip
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

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
        # A failed assertion inside a script would otherwise only surface as a
        # puzzling "API Error: 500" in the CLI's output.
        if exc_info[1] is None and self.script_errors:
            raise self.script_errors[0]

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self._serve(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
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
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        auth = {k: headers[k] for k in _SECRET_HEADERS & headers.keys()}
        headers.update({k: "<redacted>" for k in auth})
        request = RecordedRequest(
            scope["method"], scope["path"], scope["query_string"].decode(), headers, body, auth
        )
        async with self._changed:
            self.requests.append(request)
            self._changed.notify_all()

        route = (request.method, request.path)
        if route == ("POST", "/v1/messages"):
            if self.latency:
                await asyncio.sleep(self.latency)
            reply: Reply | None = self._storm_reply()
            if reply is None:
                try:
                    reply = await _resolve(self.script, request)
                except Exception as exc:  # noqa: BLE001 - re-raised by __aexit__
                    self.script_errors.append(exc)
                    reply = ErrorReply(500, "api_error", f"fake-anthropic script raised {exc!r}")
            await self._answer(request, reply, receive, send)
        elif route == ("POST", "/v1/messages/count_tokens"):
            await _send_json(send, 200, {"input_tokens": len(raw) // 4})
        elif request.path == "/api/hello":
            # Connectivity check; only sent when nonessential traffic is allowed.
            await _send_json(send, 200, {"message": "hello"})
        else:
            log.warning("fake-anthropic: unhandled %s %s", request.method, request.path)
            error = {"type": "not_found_error", "message": f"no route {request.path}"}
            await _send_json(send, 404, {"type": "error", "error": error})

    async def _answer(
        self, request: RecordedRequest, reply: Reply, receive: Receive, send: Send
    ) -> None:
        if isinstance(reply, ErrorReply):
            error = {"type": reply.error_type, "message": reply.message}
            payload = {"type": "error", "error": error}
            await _send_json(send, reply.status, payload, reply.headers)
            return
        blocks = self._blocks(reply)
        usage = dict(reply.usage or DEFAULT_USAGE)
        stop_reason = "tool_use" if isinstance(reply, ToolUseReply) else "end_turn"
        message = {
            "id": f"msg_fake_{next(self._ids):04d}",
            "type": "message",
            "role": "assistant",
            "model": request.model or "claude-fake",
            "content": blocks,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage,
        }
        self.served_usage.append(usage)
        if not request.body.get("stream"):
            await _send_json(send, 200, message)
            return
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})

        async def emit(chunk: bytes) -> None:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})

        start = {**message, "content": [], "stop_reason": None}
        await emit(_sse("message_start", message=start) + _sse("ping"))
        streamed = blocks
        if isinstance(reply, HangReply):
            if not await self._hang(reply, emit, receive):
                return
            streamed = []  # _hang streamed the text block itself
        for index, block in enumerate(streamed):
            if block["type"] == "tool_use":
                first = {**block, "input": {}}
                delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            else:
                first = {"type": "text", "text": ""}
                delta = {"type": "text_delta", "text": block["text"]}
            await emit(
                _sse("content_block_start", index=index, content_block=first)
                + _sse("content_block_delta", index=index, delta=delta)
                + _sse("content_block_stop", index=index)
            )
        end = {"stop_reason": stop_reason, "stop_sequence": None}
        await emit(
            _sse("message_delta", delta=end, usage={"output_tokens": usage.get("output_tokens", 0)})
            + _sse("message_stop")
        )
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _hang(
        self, hang: HangReply, emit: Callable[[bytes], Awaitable[None]], receive: Receive
    ) -> bool:
        """Returns False if the client went away while hung."""
        self._hangs.append(hang)
        partial = {"type": "text_delta", "text": hang.partial_text}
        await emit(
            _sse("content_block_start", index=0, content_block={"type": "text", "text": ""})
            + _sse("content_block_delta", index=0, delta=partial)
        )
        hang.started.set()
        # With the body fully read, uvicorn's receive() returns only on disconnect.
        released = asyncio.ensure_future(hang.release.wait())
        gone = asyncio.ensure_future(receive())
        done, pending = await asyncio.wait({released, gone}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if gone in done:
            hang.disconnected.set()
            return False
        rest = {"type": "text_delta", "text": hang.then_text}
        await emit(
            _sse("content_block_delta", index=0, delta=rest) + _sse("content_block_stop", index=0)
        )
        return True

    def _blocks(self, reply: Reply) -> list[dict[str, Any]]:
        if isinstance(reply, TextReply):
            return [{"type": "text", "text": reply.text}]
        if isinstance(reply, HangReply):
            # Streamed by _hang itself; only the non-streamed answer uses this.
            return [{"type": "text", "text": reply.partial_text + reply.then_text}]
        blocks: list[dict[str, Any]] = []
        if isinstance(reply, ToolUseReply):
            if reply.text:
                blocks.append({"type": "text", "text": reply.text})
            blocks += [
                {
                    "type": "tool_use",
                    "id": call.id or f"toolu_fake_{next(self._ids):04d}",
                    "name": call.name,
                    "input": call.input,
                }
                for call in reply.calls
            ]
        return blocks


@dataclass
class _Storm:
    left: int | None
    retry_after: str | None
    status: int
    error_type: str


async def _send_json(
    send: Send, status: int, payload: dict[str, Any], extra: tuple[tuple[str, str], ...] = ()
) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    headers += [(k.encode(), v.encode()) for k, v in extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
