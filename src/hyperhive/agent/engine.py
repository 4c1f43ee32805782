"""The engine seam: what the harness needs from whatever runs a turn.

The real engine is Claude Code through ``claude-agent-sdk``
(:mod:`hyperhive.agent.claude`); :mod:`hyperhive.agent.fake_engine` ships a
scripted one for tests that are about the harness, not about Claude Code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class EngineEvent:
    """One event of a turn, already in history form (see ``AgentEvent`` kinds).

    A turn's last event has kind ``result`` with ``is_error``, ``text``,
    ``cost_usd``, ``input_tokens``, ``output_tokens``, ``duration_ms``,
    ``session_id``; a failed one may say why: ``auth_error`` (bool),
    ``api_error_status`` (the HTTP status of the failing API call) and ``api_error``
    (the engine's word for it: ``server_error``, ``rate_limit``, …), which
    :mod:`hyperhive.agent.failures` reads.
    """

    kind: str
    data: dict[str, Any] = field(default_factory=dict)


class EngineError(Exception):
    """The engine could not run the turn at all (not a failed turn: that is a result)."""


class NotLoggedIn(EngineError):
    """The engine has no usable credentials; the operator must log in."""


class EngineUnavailable(EngineError):
    """The engine could not start (its process would not come up): not the fault of
    the prompt, so a message that met this goes back to the queue (agent/failures.py)."""


class Engine(Protocol):
    @property
    def session_id(self) -> str | None: ...

    @property
    def model(self) -> str | None: ...

    def turn(self, prompt: str) -> AsyncIterator[EngineEvent]:
        """Run one turn; yields its events and ends after the ``result``."""
        ...

    async def interrupt(self) -> None:
        """Stop the running turn soon; its stream still ends with a ``result``."""
        ...

    async def set_model(self, model: str | None) -> None: ...

    async def close(self) -> None:
        """Release the engine's process (idle timeout, shutdown); resumable later."""
        ...


class DeferredEngine:
    """Builds the real engine on first use, so an agent that has not run a turn
    yet does not carry the engine's imports (the Claude SDK: ~45 MiB)."""

    def __init__(self, build: Callable[[], Engine]) -> None:
        self._build = build
        self._engine: Engine | None = None
        self._model: str | None = None

    def _real(self) -> Engine:
        if self._engine is None:
            self._engine = self._build()
        return self._engine

    @property
    def session_id(self) -> str | None:
        return self._engine.session_id if self._engine else None

    @property
    def model(self) -> str | None:
        return self._engine.model if self._engine else self._model

    async def turn(self, prompt: str) -> AsyncIterator[EngineEvent]:
        engine = self._real()
        if self._model is not None:
            await engine.set_model(self._model)
            self._model = None
        async for event in engine.turn(prompt):
            yield event

    async def interrupt(self) -> None:
        if self._engine is not None:
            await self._engine.interrupt()

    async def set_model(self, model: str | None) -> None:
        if self._engine is None:
            self._model = model
        else:
            await self._engine.set_model(model)

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.close()
