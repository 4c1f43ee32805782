"""The worker task: queued work run one turn at a time, so an operator prompt waits
behind a running turn rather than interrupting it. Each turn's events go into the
history, and its outcome is judged by whose fault a failure was (agent/failures.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from hyperhive.agent import work_changes
from hyperhive.agent.activity import ActivityReport
from hyperhive.agent.engine import Engine, EngineError
from hyperhive.agent.failures import Failed, Handled, Outcome, Retry, judge
from hyperhive.agent.history import History
from hyperhive.agent.presence import Presence
from hyperhive.agent.settings import AgentSettings

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Work:
    prompt: str
    trigger: Literal["message", "operator"]
    message: dict[str, Any] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    outcome: Outcome = field(default_factory=Handled)


class Turns:
    def __init__(
        self,
        settings: AgentSettings,
        engine: Engine,
        history: History,
        presence: Presence,
        activity: ActivityReport | None = None,
    ) -> None:
        self._settings = settings
        self._activity = activity  # the core's word on the turn, for stall detection
        self._engine = engine
        self._history = history
        self._presence = presence
        self.queue: asyncio.Queue[Work] = asyncio.Queue()
        self.running = False
        self._cancelled = False  # the operator cancelled the running turn
        # A login reaches only a new engine process (the CLI reads its key at start).
        self.restart_engine = False

    async def run(self) -> None:
        while True:
            work = await self.queue.get()
            try:
                work.outcome = await self._run_turn(work)
            except Exception as exc:
                # A fault of ours, not the engine's answer: the loop goes on, and the
                # message is counted as failed rather than acked as if it were handled.
                log.exception("a turn failed inside the harness")
                work.outcome = Failed(f"the harness failed: {exc}")
            finally:
                work.done.set()

    async def cancel(self) -> bool:
        """Interrupt the running turn; False if none runs."""
        if not self.running:
            return False
        self._cancelled = True
        await self._engine.interrupt()
        return True

    async def _run_turn(self, work: Work) -> Outcome:
        started = time.monotonic()
        begin: dict[str, Any] = {"trigger": work.trigger, "prompt": work.prompt}
        if work.message is not None:
            begin |= {"message_id": work.message["id"], "from": work.message["from"]}
        turn = self._history.publish("turn_start", begin).id
        self.running, self._cancelled = True, False
        self._presence.set(turn_running=True)
        if self._activity is not None:
            self._activity.start(turn)
        if self.restart_engine:
            self.restart_engine = False
            await self._engine.close()
        work_before = await asyncio.to_thread(work_changes.snapshot, self._settings.workspace)
        result: dict[str, Any] = {}
        raised: EngineError | None = None
        try:
            async for event in self._engine.turn(work.prompt):
                self._history.publish(event.kind, event.data)
                if self._activity is not None:
                    self._activity.event(turn)
                if event.kind == "result":
                    result = event.data
        except EngineError as exc:
            raised = exc
        finally:
            self.running = False
            self._presence.set(turn_running=False)
            if self._activity is not None:
                self._activity.end(turn)
        work_after = await asyncio.to_thread(work_changes.snapshot, self._settings.workspace)
        changed = work_changes.changes(work_before, work_after)
        if changed is not None:
            self._history.publish(work_changes.KIND, changed)
        outcome = judge(raised, result, cancelled=self._cancelled)
        if isinstance(outcome, Retry) and outcome.cause == "login":
            self._presence.set(logged_in=False)
        elif isinstance(outcome, Handled) and result and not result.get("is_error"):
            self._presence.set(logged_in=True)  # a turn that worked proves the login
        self._report(turn, raised, result, started)
        return outcome

    def _report(
        self, turn: int, raised: EngineError | None, result: dict[str, Any], started: float
    ) -> None:
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
                "session_id": result.get("session_id") or self._engine.session_id,
            },
        )
