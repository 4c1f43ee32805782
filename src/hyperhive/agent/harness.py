"""The harness: one agent's turn loop, its commands, and its page's controls.

Two tasks cooperate. The *inbox* task holds a connection to the core, leases
the next message (long-poll), queues it as work, waits for its turn to finish
and settles the lease by whose fault a failure was (agent/failures.py): ack a
handled message; ``fail`` one whose turn errored (the core counts attempts and
dead-letters it after a few); ``nack`` one that met trouble not of its making (no
login, the API down, the engine not starting) and wait, disconnected, for a login
or out a backoff before taking work again. If the socket goes away the agent
shows ``offline`` and reconnects with backoff, and the core re-queues the open
lease, counting nothing. The *worker* task runs queued work one turn at a time,
so an operator prompt waits behind a running turn rather than interrupting it.
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
from hyperhive.agent.engine import Engine, EngineError
from hyperhive.agent.failures import Backoff, Failed, Handled, Outcome, Retry, judge
from hyperhive.agent.history import History
from hyperhive.agent.login import Credentials, LoginError, SetupTokenFlow
from hyperhive.agent.model import ModelFile
from hyperhive.agent.prompts import HELP, wake_prompt
from hyperhive.agent.settings import AgentSettings
from hyperhive.agent.state import KEEP, AgentState, Keep
from hyperhive.client import Client
from hyperhive.errors import BadRequest, HiveError

log = logging.getLogger(__name__)
RECV_WAIT: Final = 30.0
BACKOFF_START: Final = 0.1
BACKOFF_MAX: Final = 5.0
# Waiting for a login, the credentials are looked at again at least this often, so a
# key that appears by other means than the page (a file, a mount) is noticed.
LOGIN_RECHECK_MAX: Final = 30.0
BADGE_REASON: Final = 200


@dataclass(eq=False)
class Work:
    prompt: str
    trigger: Literal["message", "operator"]
    message: dict[str, Any] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    outcome: Outcome = field(default_factory=Handled)


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
        backoff: Backoff | None = None,
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
        self._cancelled = False  # the operator cancelled the running turn
        self._stopping = asyncio.Event()
        self._backoff = backoff or Backoff()
        self._troubles = 0  # failures in a row that were not the message's fault
        self._login = asyncio.Event()  # set whenever a login is saved
        # A login reaches only a new engine process (the CLI reads its key at start).
        self._restart_engine = False

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
            held: tuple[int, Retry] | None = None
            try:
                held = await self._lease_loop(client, answered)
            except (HiveError, OSError) as exc:
                log.warning("lost the core socket: %s", exc)
            finally:
                await client.close()
            if held is not None:
                # Not the core's trouble: wait without a connection for the core to keep
                # (it would idle out), the badge saying why; then take work again.
                await self._hold_off(*held)
                backoff = BACKOFF_START
                continue
            self._set_state(core_connected=False)
            # A core that accepts and then refuses (busy, shutting down) must
            # not be hammered: only a connection that served a recv resets.
            if answered.is_set():
                backoff = BACKOFF_START
            else:
                await self._pause(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)

    async def _lease_loop(self, client: Client, answered: asyncio.Event) -> tuple[int, Retry]:
        """Lease, run, settle, until a message is given back for trouble not its own:
        then its id and why, for :meth:`_hold_off`."""
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
            # Settled only after the turn: a crash mid-turn leaves the lease open, so
            # the core hands the message out again (and counts no attempt).
            outcome, lease, mid = work.outcome, got["lease"], int(message["id"])
            if isinstance(outcome, Retry):
                await client.call("nack", lease=lease)
                return mid, outcome
            self._troubles = 0
            if isinstance(outcome, Failed):
                await self._fail(client, lease, mid, outcome)
            else:
                await client.call("ack", lease=lease)

    async def _fail(self, client: Client, lease: object, mid: int, failed: Failed) -> None:
        done = await client.call("fail", lease=lease, reason=failed.reason)
        if done["dead"]:
            text = (
                f"message #{mid} failed {done['attempts']} times; it is a dead letter now "
                "(the operator can retry or drop it)"
            )
            self._history.publish("notice", {"level": "error", "text": text})
        else:
            text = f"message #{mid} failed (try {done['attempts']}); it goes back to the queue"
            self._history.publish("notice", {"level": "warning", "text": text})

    async def _hold_off(self, mid: int, retry: Retry) -> None:
        """After a message went back for ``retry``: wait for a login, or out a backoff."""
        self._troubles += 1
        delay = self._backoff.delay(self._troubles)
        if retry.cause == "login":
            text = f"message #{mid} is back in the queue until a login: {retry.reason}"
            self._history.publish("notice", {"level": "warning", "text": text})
            await self._until_logged_in(delay)
            return
        text = f"{retry.reason} — message #{mid} is back in the queue; next try in {delay:g} s"
        self._history.publish("notice", {"level": "warning", "text": text})
        self._set_state(backoff=f"{retry.cause}: {retry.reason}"[:BADGE_REASON])
        try:
            await self._pause(delay)
        finally:
            self._set_state(backoff=None)

    async def _until_logged_in(self, recheck: float) -> None:
        """Until a login is saved on the page, or credentials appear by other means."""
        mark = self._credential_mark()
        while not self._state.logged_in and not self._stopping.is_set():
            self._login.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(recheck, LOGIN_RECHECK_MAX)):
                    await self._login.wait()
            recheck *= 2
            if self._credential_mark() != mark and self.credentials.available():
                self._restart_engine = True
                self._set_state(logged_in=True)

    def _credential_mark(self) -> tuple[int, int | None]:
        """Changes when the credentials do (the hash never leaves this process)."""
        try:
            stamp = (self.credentials.claude_dir / ".credentials.json").stat().st_mtime_ns
        except OSError:
            stamp = None
        return hash(tuple(self.credentials.secrets())), stamp

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    async def _worker(self) -> None:
        while True:
            work = await self._queue.get()
            try:
                work.outcome = await self._run_turn(work)
            except Exception as exc:
                # A fault of ours, not the engine's answer: the loop goes on, and the
                # message is counted as failed rather than acked as if it were handled.
                log.exception("a turn failed inside the harness")
                work.outcome = Failed(f"the harness failed: {exc}")
            finally:
                work.done.set()

    async def _run_turn(self, work: Work) -> Outcome:
        started = time.monotonic()
        begin: dict[str, Any] = {"trigger": work.trigger, "prompt": work.prompt}
        if work.message is not None:
            begin |= {"message_id": work.message["id"], "from": work.message["from"]}
        turn = self._history.publish("turn_start", begin).id
        self._turn_running, self._cancelled = True, False
        self._set_state(turn_running=True)
        if self._restart_engine:
            self._restart_engine = False
            await self.engine.close()
        work_before = await asyncio.to_thread(work_changes.snapshot, self.settings.workspace)
        result: dict[str, Any] = {}
        raised: EngineError | None = None
        try:
            async for event in self.engine.turn(work.prompt):
                self._history.publish(event.kind, event.data)
                if event.kind == "result":
                    result = event.data
        except EngineError as exc:
            raised = exc
        finally:
            self._turn_running = False
            self._set_state(turn_running=False)
        work_after = await asyncio.to_thread(work_changes.snapshot, self.settings.workspace)
        changed = work_changes.changes(work_before, work_after)
        if changed is not None:
            self._history.publish(work_changes.KIND, changed)
        outcome = judge(raised, result, cancelled=self._cancelled)
        if isinstance(outcome, Retry) and outcome.cause == "login":
            self._set_state(logged_in=False)
        elif isinstance(outcome, Handled) and result and not result.get("is_error"):
            self._set_state(logged_in=True)  # a turn that worked proves the login
        error = None if raised is None else str(raised)
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
        return outcome

    def note_tool_request(self, tool: str, tool_input: dict[str, Any], answer: object) -> None:
        """The core's answer to one ``tool_use`` ask, into the history, so the page shows
        what waits for the operator (see :mod:`hyperhive.agent.tool_requests`)."""
        tool_requests.recorder(self._history)(tool, tool_input, answer)

    def _note_decision(self, message: dict[str, Any]) -> None:
        data = tool_requests.from_decision(self.settings.name, message)
        if data is not None:
            self._history.publish(tool_requests.KIND, data)

    def _set_state(
        self,
        *,
        core_connected: bool | None = None,
        logged_in: bool | None = None,
        turn_running: bool | None = None,
        backoff: str | Keep | None = KEEP,
    ) -> None:
        if logged_in:
            self._login.set()
        changed = self._state.update(
            self._clock(),
            core_connected=core_connected,
            logged_in=logged_in,
            turn_running=turn_running,
            backoff=backoff,
        )
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
        self._cancelled = True
        await self.engine.interrupt()
        return CommandResult(True, "cancelling the running turn")

    async def save_api_key(self, key: str) -> CommandResult:
        self.credentials.save_api_key(key)
        self._restart_engine = True
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
        self._restart_engine = True
        self._set_state(logged_in=True)
        self._history.publish("notice", {"level": "info", "text": "login token saved"})
        return CommandResult(True, "logged in")
