"""The harness: one agent's turn loop, its commands, and its page's controls.

Two tasks cooperate. The *inbox* task holds a connection to the core, leases
the next message (long-poll), queues it as work, waits for its turn to finish
and acks it; if the socket goes away the agent shows ``offline`` and
reconnects with backoff, and the core re-queues the unacked lease. The
*worker* task runs queued work one turn at a time, so an operator prompt
waits behind a running turn rather than interrupting it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from hyperhive.agent import tool_requests, work_changes
from hyperhive.agent.control import AgentEvent, CommandResult, Status
from hyperhive.agent.engine import Engine, EngineError, NotLoggedIn
from hyperhive.agent.history import History
from hyperhive.agent.login import Credentials, LoginError, SetupTokenFlow
from hyperhive.agent.model import ModelFile
from hyperhive.agent.prompts import HELP, wake_prompt
from hyperhive.agent.settings import AgentSettings
from hyperhive.agent.state import AgentState
from hyperhive.client import Client
from hyperhive.errors import BadRequest, HiveError

log = logging.getLogger(__name__)
RECV_WAIT: Final = 30.0
BACKOFF_START: Final = 0.1
BACKOFF_MAX: Final = 5.0


@dataclass(eq=False)
class Work:
    prompt: str
    trigger: Literal["message", "operator"]
    message: dict[str, Any] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Harness:
    def __init__(
        self,
        settings: AgentSettings,
        engine: Engine,
        history: History,
        credentials: Credentials,
        *,
        setup_token: SetupTokenFlow | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self._history = history
        self.credentials = credentials
        self._setup_token = setup_token
        self._clock = clock
        self._model_file = ModelFile(settings.model_file)
        self._state = AgentState(clock())
        self._queue: asyncio.Queue[Work] = asyncio.Queue()
        self._turn_running = False
        self._stopping = asyncio.Event()

    # -- running -----------------------------------------------------------

    async def run(self) -> None:
        """Run until :meth:`stop`; restores the persisted model first."""
        try:
            model = self._model_file.read()
        except OSError as exc:
            model = None
            text = f"cannot read the saved model from {self._model_file.path}: {exc.strerror}"
            self._history.publish("notice", {"level": "warning", "text": text})
        model = model or self.settings.default_model
        if model:
            await self.engine.set_model(model)
        self._set_state(logged_in=self.credentials.available())
        tasks = [asyncio.create_task(self._inbox()), asyncio.create_task(self._worker())]
        try:
            await self._stopping.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.engine.close()

    def stop(self) -> None:
        self._stopping.set()

    async def _inbox(self) -> None:
        backoff = BACKOFF_START
        while not self._stopping.is_set():
            try:
                client = await Client.connect(self.settings.socket)
            except HiveError:
                self._set_state(core_connected=False)
                await self._pause(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            self._set_state(core_connected=True)
            answered = asyncio.Event()
            try:
                await self._lease_loop(client, answered)
            except (HiveError, OSError) as exc:
                log.warning("lost the core socket: %s", exc)
            finally:
                await client.close()
            self._set_state(core_connected=False)
            # A core that accepts and then refuses (busy, shutting down) must
            # not be hammered: only a connection that served a recv resets.
            if answered.is_set():
                backoff = BACKOFF_START
            else:
                await self._pause(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    async def _lease_loop(self, client: Client, answered: asyncio.Event) -> None:
        while True:
            got = await client.call("recv", wait=RECV_WAIT, lease=True)
            answered.set()
            if got is None:
                continue
            message = got["message"]
            self._note_decision(message)
            work = Work(wake_prompt(self.settings.name, message), "message", message)
            self._queue.put_nowait(work)
            await work.done.wait()
            # Acked only after the turn: a crash mid-turn leaves the lease
            # unacked, so the core hands the message out again after restart.
            await client.call("ack", lease=got["lease"])

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    async def _worker(self) -> None:
        while True:
            work = await self._queue.get()
            try:
                await self._run_turn(work)
            finally:
                work.done.set()

    async def _run_turn(self, work: Work) -> None:
        started = time.monotonic()
        begin: dict[str, Any] = {"trigger": work.trigger, "prompt": work.prompt}
        if work.message is not None:
            begin |= {"message_id": work.message["id"], "from": work.message["from"]}
        turn = self._history.publish("turn_start", begin).id
        self._turn_running = True
        self._set_state(turn_running=True)
        work_before = await asyncio.to_thread(work_changes.snapshot, self.settings.workspace)
        result: dict[str, Any] = {}
        error: str | None = None
        try:
            async for event in self.engine.turn(work.prompt):
                self._history.publish(event.kind, event.data)
                if event.kind == "result":
                    result = event.data
        except NotLoggedIn as exc:
            error = str(exc)
            self._set_state(logged_in=False)
        except EngineError as exc:
            error = str(exc)
        finally:
            self._turn_running = False
            self._set_state(turn_running=False)
        work_after = await asyncio.to_thread(work_changes.snapshot, self.settings.workspace)
        changed = work_changes.changes(work_before, work_after)
        if changed is not None:
            self._history.publish(work_changes.KIND, changed)
        if result.get("auth_error"):
            self._set_state(logged_in=False)
        if error is None and result.get("is_error"):
            error = str(result.get("text") or "the turn failed")
        if error:
            self._history.publish("notice", {"level": "error", "text": error})
        self._history.publish(
            "turn_end",
            {
                "turn": turn,
                "ok": error is None,
                "error": error,
                "cost_usd": result.get("cost_usd"),
                "input_tokens": result.get("input_tokens"),
                "output_tokens": result.get("output_tokens"),
                "duration_ms": result.get("duration_ms")
                or int((time.monotonic() - started) * 1000),
                "session_id": result.get("session_id") or self.engine.session_id,
            },
        )

    def note_tool_request(self, tool: str, tool_input: dict[str, Any], answer: object) -> None:
        """The core's answer to one ``tool_use`` ask, into the history, so the page shows
        what waits for the operator (see :mod:`hyperhive.agent.tool_requests`)."""
        tool_requests.recorder(self._history)(tool, tool_input, answer)

    def _note_decision(self, message: dict[str, Any]) -> None:
        data = tool_requests.from_decision(self.settings.name, message)
        if data is not None:
            self._history.publish(tool_requests.KIND, data)

    def _set_state(self, **facts: bool) -> None:
        changed = self._state.update(self._clock(), **facts)
        if changed is not None:
            self._history.publish(
                "state",
                {"state": changed.state, "since": changed.since, "reason": changed.reason},
            )

    # -- AgentControl --------------------------------------------------------

    def status(self) -> Status:
        badge = self._state.current
        return Status(
            name=self.settings.name,
            state=badge.state,
            since=badge.since,
            reason=badge.reason,
            model=self.engine.model,
            session_id=self.engine.session_id,
            queued=self._queue.qsize(),
            needs_login=not self._state.logged_in,
        )

    def history(self, after: int | None, limit: int) -> list[AgentEvent]:
        return self._history.events(after, limit)

    def subscribe(self, after: int | None) -> AsyncIterator[AgentEvent]:
        return self._history.subscribe(after)

    async def prompt(self, text: str) -> CommandResult:
        text = text.strip()
        if not text:
            raise BadRequest("the prompt is empty")
        if text.startswith("/"):
            name, _, arg = text[1:].partition(" ")
            result = await self._command(name.lower(), arg.strip() or None)
            self._history.publish(
                "command",
                {
                    "name": name,
                    "arg": arg.strip() or None,
                    "ok": result.ok,
                    "message": result.message,
                },
            )
            return result
        self._history.publish("operator_prompt", {"text": text})
        self._queue.put_nowait(Work(text, "operator"))
        ahead = self._queue.qsize() - 1 + (1 if self._turn_running else 0)
        return CommandResult(True, f"queued behind {ahead} turn(s)" if ahead else "running")

    async def _command(self, name: str, arg: str | None) -> CommandResult:
        if name == "help":
            return CommandResult(True, HELP)
        if name == "cancel":
            return await self.cancel()
        if name in ("clear", "compact"):
            # Claude Code runs these itself: /clear yields a new session id,
            # /compact emits a compact_boundary. Both go through the queue.
            self._queue.put_nowait(Work(f"/{name}", "operator"))
            return CommandResult(True, f"/{name} queued")
        if name == "model":
            return await self._set_model(arg)
        return CommandResult(False, f"unknown command /{name}; try /help")

    async def _set_model(self, model: str | None) -> CommandResult:
        if model is None:
            return CommandResult(True, f"model: {self.engine.model or 'default'}")
        if len(model) > 200 or any(c.isspace() for c in model):
            return CommandResult(False, "a model name is one word of at most 200 characters")
        await self.engine.set_model(model)
        try:
            self._model_file.write(model)
        except OSError as exc:
            text = f"model set to {model}, but it will not survive a restart: {exc.strerror}"
            self._history.publish("notice", {"level": "warning", "text": text})
            return CommandResult(True, text)
        return CommandResult(True, f"model set to {model}")

    async def cancel(self) -> CommandResult:
        if not self._turn_running:
            return CommandResult(False, "no turn is running")
        await self.engine.interrupt()
        return CommandResult(True, "cancelling the running turn")

    async def save_api_key(self, key: str) -> CommandResult:
        self.credentials.save_api_key(key)
        self._set_state(logged_in=True)
        self._history.publish("notice", {"level": "info", "text": "API key saved"})
        return CommandResult(True, "API key saved")

    async def start_setup_token(self) -> CommandResult:
        if self._setup_token is None:
            return CommandResult(False, "setup-token is not available here")
        try:
            url = await self._setup_token.start()
        except LoginError as exc:
            return CommandResult(False, exc.message)
        return CommandResult(True, url)

    async def finish_setup_token(self, code: str) -> CommandResult:
        if self._setup_token is None:
            return CommandResult(False, "setup-token is not available here")
        try:
            token = await self._setup_token.finish(code)
        except LoginError as exc:
            return CommandResult(False, exc.message)
        self.credentials.save_oauth_token(token)
        self._set_state(logged_in=True)
        self._history.publish("notice", {"level": "info", "text": "login token saved"})
        return CommandResult(True, "logged in")
