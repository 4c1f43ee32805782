"""Whose fault a failed turn was, and so what becomes of the message that woke it.

Plain code over plain values (the exception the engine raised, the ``result`` event's
fields), tested by table. Three outcomes:

- :class:`Handled`: the turn ran (or the operator cancelled it): ack.
- :class:`Retry`: not the message's fault (no credentials, the API overloaded or
  unreachable after the CLI's own retries, the engine would not start): the message
  goes back to the queue untouched (nack) and the harness waits before taking work
  again, for a login or for a bounded exponential backoff.
- :class:`Failed`: the turn errored for any other reason, so perhaps because of the
  message: the core counts an attempt (``fail``) and, after a few, dead-letters it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from hyperhive.agent.engine import EngineError, EngineUnavailable, NotLoggedIn

Cause = Literal["login", "upstream", "engine"]
# The engine's words (claude-agent-sdk's AssistantMessage.error) for trouble upstream:
# the API overloaded, rate limited, unreachable (ECONNREFUSED comes as server_error), or
# out of credit. "invalid_request" and "unknown" may well be the prompt's doing.
UPSTREAM_KINDS: Final = frozenset({"server_error", "rate_limit", "billing_error"})
AUTH_KINDS: Final = frozenset({"authentication_failed"})
AUTH_STATUSES: Final = frozenset({401, 403})
# 408 timeout, 409 conflict, 429 rate limit, 5xx (529 overloaded): worth the same try later.
UPSTREAM_STATUSES: Final = frozenset({408, 409, 429})
REASON_LIMIT: Final = 1000  # characters of an error text kept in a reason


@dataclass(frozen=True, slots=True)
class Handled:
    pass


@dataclass(frozen=True, slots=True)
class Retry:
    cause: Cause
    reason: str


@dataclass(frozen=True, slots=True)
class Failed:
    reason: str


Outcome = Handled | Retry | Failed


def judge(raised: EngineError | None, result: Mapping[str, Any], *, cancelled: bool) -> Outcome:
    """The outcome of one turn: ``raised`` by the engine (or None), its ``result`` fields
    (empty if it never came), and whether the operator cancelled it."""
    if isinstance(raised, NotLoggedIn):
        return Retry("login", _short(str(raised) or "not logged in"))
    if isinstance(raised, EngineUnavailable):
        return Retry("engine", _short(str(raised) or "the engine would not start"))
    if raised is not None:
        return Failed(_short(str(raised) or type(raised).__name__))
    if cancelled:
        return Handled()  # the operator chose to stop it: the message was seen to
    if not result.get("is_error") and not result.get("auth_error"):
        return Handled()
    text = _short(str(result.get("text") or "the turn failed"))
    status, kind = _status(result.get("api_error_status")), result.get("api_error")
    kind = kind if isinstance(kind, str) else None
    if result.get("auth_error") or kind in AUTH_KINDS or status in AUTH_STATUSES:
        return Retry("login", text)
    if kind in UPSTREAM_KINDS or status in UPSTREAM_STATUSES or 500 <= status <= 599:
        return Retry("upstream", text)
    return Failed(text)


def _status(value: object) -> int:
    """An HTTP status, or 0 for none (or for anything that is not one)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _short(text: str) -> str:
    text = text.strip()
    return text if len(text) <= REASON_LIMIT else text[: REASON_LIMIT - 1] + "…"


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long to wait after the n-th failure in a row that was not the message's
    fault: ``start`` doubling up to ``cap`` seconds."""

    start: float = 1.0
    cap: float = 300.0

    def delay(self, failures: int) -> float:
        if failures < 1:
            return 0.0
        # The exponent is bounded so a very long outage cannot overflow a float.
        return min(self.start * 2.0 ** min(failures - 1, 60), self.cap)
