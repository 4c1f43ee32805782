"""When a container dies on its own: restart with backoff, or give up.

Pure decisions over plain values: the lifecycle feeds each exit with the time
it happened and acts on the answer. A container that keeps dying is left
``failed`` with its last error rather than restarted forever.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

MAX_CRASHES: Final = 5
WINDOW_SECONDS: Final = 300.0
BACKOFF_START: Final = 1.0
BACKOFF_MAX: Final = 30.0


@dataclass(frozen=True, slots=True)
class Restart:
    after: float  # seconds


@dataclass(frozen=True, slots=True)
class GiveUp:
    error: str


@dataclass(frozen=True, slots=True)
class Policy:
    max_crashes: int = MAX_CRASHES
    window: float = WINDOW_SECONDS
    backoff_start: float = BACKOFF_START
    backoff_max: float = BACKOFF_MAX


@dataclass(frozen=True, slots=True)
class CrashRecord:
    """Recent unexpected exits of one container (times, oldest first)."""

    times: tuple[float, ...] = ()

    def after_crash(self, now: float, policy: Policy) -> CrashRecord:
        recent = tuple(t for t in self.times if now - t < policy.window)
        return CrashRecord((*recent, now))


def on_unexpected_exit(
    record: CrashRecord, code: int, now: float, policy: Policy = Policy()
) -> tuple[CrashRecord, Restart | GiveUp]:
    """The container exited with ``code`` although nobody asked it to stop."""
    record = record.after_crash(now, policy)
    count = len(record.times)
    if count >= policy.max_crashes:
        minutes = policy.window / 60
        return record, GiveUp(
            f"exited with code {code}; {count} crashes within {minutes:g} min, giving up"
        )
    delay = min(policy.backoff_start * 2 ** (count - 1), policy.backoff_max)
    return record, Restart(delay)


def describe_exit(code: int) -> str:
    if code < 0:
        return f"killed by signal {-code}"
    return f"exited with code {code}"
