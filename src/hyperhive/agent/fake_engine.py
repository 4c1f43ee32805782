"""A scripted engine for harness tests: no Claude Code, same seam.

A script maps a prompt to the events of its turn. A step may be an
:class:`EngineEvent`, a :class:`Hang` (block until interrupted, then end the
turn as interrupted), a :class:`Raise` (the engine fails: ``NotLoggedIn``,
``EngineUnavailable`` or any ``EngineError``), an :class:`EndWith` (the turn's
``result`` carries these fields, e.g. an API error), or a callable run at that
point (to send over the socket like a tool would, or to raise).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hyperhive.agent.engine import EngineError, EngineEvent


@dataclass(frozen=True, slots=True)
class Hang:
    """Block the turn until ``interrupt()``; ``started`` is set when the hang begins."""

    started: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True, slots=True)
class Raise:
    """The engine raises ``error`` at this point of the turn (no ``result`` follows)."""

    error: EngineError


@dataclass(frozen=True, slots=True)
class EndWith:
    """End the turn here; its ``result`` has these fields over the usual ones, e.g.
    ``{"is_error": True, "api_error_status": 529, "text": "API Error: 529 Overloaded"}``."""

    result: dict[str, Any]


Step = EngineEvent | Hang | Raise | EndWith | Callable[[], Awaitable[None]]
Script = Callable[[str], Sequence[Step]]


def echo(prompt: str) -> Sequence[Step]:
    return [EngineEvent("assistant", {"text": f"echo: {prompt}"})]


class ScriptedEngine:
    def __init__(self, script: Script = echo, *, model: str | None = None) -> None:
        self._script = script
        self._model = model
        self._session: str | None = None
        self._sessions = itertools.count(1)
        self._interrupted = asyncio.Event()
        self.prompts: list[str] = []
        self.models: list[str | None] = []
        self.interrupts = 0
        self.closed = 0

    @property
    def session_id(self) -> str | None:
        return self._session

    @property
    def model(self) -> str | None:
        return self._model

    async def turn(self, prompt: str) -> AsyncIterator[EngineEvent]:
        started = time.monotonic()
        self.prompts.append(prompt)
        self.models.append(self._model)
        self._interrupted.clear()
        if self._session is None or prompt.strip() == "/clear":
            self._session = f"fake-session-{next(self._sessions)}"
        yield EngineEvent(
            "system", {"subtype": "init", "session_id": self._session, "model": self._model}
        )
        interrupted = False
        ending: dict[str, Any] = {}
        for step in self._script(prompt):
            if isinstance(step, EngineEvent):
                yield step
            elif isinstance(step, Hang):
                step.started.set()
                await self._interrupted.wait()
                interrupted = True
                break
            elif isinstance(step, Raise):
                raise step.error
            elif isinstance(step, EndWith):
                ending = step.result
                break
            else:
                await step()
        result = {
            "is_error": interrupted,
            "text": "interrupted" if interrupted else "done",
            "cost_usd": 0.0,
            "input_tokens": len(prompt),
            "output_tokens": 1,
            "duration_ms": int((time.monotonic() - started) * 1000),
            "session_id": self._session,
        }
        yield EngineEvent("result", result | ending)

    async def interrupt(self) -> None:
        self.interrupts += 1
        self._interrupted.set()

    async def set_model(self, model: str | None) -> None:
        self._model = model

    async def close(self) -> None:
        self.closed += 1
