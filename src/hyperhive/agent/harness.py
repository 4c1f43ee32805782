"""The harness: one agent's turn loop, its commands, and its page's controls.

Two tasks cooperate: the *inbox* task (agent/core_link.py) leases messages from the
core and settles each by its turn's outcome, and the *worker* task (agent/turns.py)
runs queued work one turn at a time. The harness starts and stops both, and is the
page's :class:`~hyperhive.agent.control.AgentControl`: status, history, prompts,
slash commands and logins.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from hyperhive.agent import tool_requests
from hyperhive.agent.activity import ActivityReport
from hyperhive.agent.control import AgentEvent, CommandResult, Status
from hyperhive.agent.core_link import CoreLink
from hyperhive.agent.engine import Engine
from hyperhive.agent.failures import Backoff
from hyperhive.agent.history import History
from hyperhive.agent.login import ELSEWHERE, Credentials
from hyperhive.agent.model import ModelFile
from hyperhive.agent.presence import Presence
from hyperhive.agent.prompts import HELP
from hyperhive.agent.settings import AgentSettings
from hyperhive.agent.turns import Turns, Work
from hyperhive.errors import BadRequest


class Harness:
    def __init__(
        self,
        settings: AgentSettings,
        engine: Engine,
        history: History,
        credentials: Credentials,
        *,
        clock: Callable[[], float] = time.time,
        backoff: Backoff | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self._history = history
        self.credentials = credentials
        self._model_file = ModelFile(settings.model_file)
        self._presence = Presence(history, clock)
        self._activity = ActivityReport(settings.socket)
        self._turns = Turns(settings, engine, history, self._presence, self._activity)
        self._stopping = asyncio.Event()
        self._link = CoreLink(
            settings,
            history,
            credentials,
            self._presence,
            self._turns,
            backoff=backoff or Backoff(),
            stopping=self._stopping,
        )

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
        if self.settings.api_socket is None:
            self._presence.set(logged_in=self.credentials.available())
        # Behind the gateway the core says, once connected (agent/core_link.py).
        tasks = [asyncio.create_task(self._link.run()), asyncio.create_task(self._turns.run())]
        tasks.append(asyncio.create_task(self._activity.run()))
        try:
            await self._stopping.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.engine.close()

    def stop(self) -> None:
        self._stopping.set()

    def note_tool_request(self, tool: str, tool_input: dict[str, Any], answer: object) -> None:
        """The core's answer to one ``tool_use`` ask, into the history, so the page shows
        what waits for the operator (see :mod:`hyperhive.agent.tool_requests`)."""
        tool_requests.recorder(self._history)(tool, tool_input, answer)

    # -- AgentControl --------------------------------------------------------

    def status(self) -> Status:
        badge = self._presence.state.current
        return Status(
            name=self.settings.name,
            state=badge.state,
            since=badge.since,
            reason=badge.reason,
            model=self.engine.model,
            session_id=self.engine.session_id,
            queued=self._turns.queue.qsize(),
            needs_login=not self._presence.state.logged_in,
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
        self._turns.queue.put_nowait(Work(text, "operator"))
        ahead = self._turns.queue.qsize() - 1 + (1 if self._turns.running else 0)
        return CommandResult(True, f"queued behind {ahead} turn(s)" if ahead else "running")

    async def _command(self, name: str, arg: str | None) -> CommandResult:
        if name == "help":
            return CommandResult(True, HELP)
        if name == "cancel":
            return await self.cancel()
        if name in ("clear", "compact"):
            # Claude Code runs these itself: /clear yields a new session id,
            # /compact emits a compact_boundary. Both go through the queue.
            self._turns.queue.put_nowait(Work(f"/{name}", "operator"))
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
        if not await self._turns.cancel():
            return CommandResult(False, "no turn is running")
        return CommandResult(True, "cancelling the running turn")

    # The page the harness serves on its own port still offers a login form; the harness
    # takes no key (the core's page does, and keeps it): each says where to go instead.

    async def save_api_key(self, key: str) -> CommandResult:
        return CommandResult(False, ELSEWHERE)

    async def start_setup_token(self) -> CommandResult:
        return CommandResult(False, ELSEWHERE)

    async def finish_setup_token(self, code: str) -> CommandResult:
        return CommandResult(False, ELSEWHERE)
