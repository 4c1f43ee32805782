"""How much an agent may make the core store: send rates and an undelivered-bytes quota.

Plain code without I/O: the broker tells it the time, who sends how many bytes, and
what was delivered; it answers whether a send may go ahead. Per sender there are two
token buckets (messages per second, body bytes per second) and a tally of the bytes
of that sender's messages still waiting in sqlite. The buckets bound the write rate;
the tally bounds what a recipient that never reads can make the core keep.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from hyperhive.errors import QuotaExceeded, RateLimited

if TYPE_CHECKING:
    from hyperhive.config import Config

# A stored message costs a row and an inbox entry even when its body is one byte; without
# this a quota in bytes would let an agent queue tens of millions of tiny messages.
MESSAGE_OVERHEAD: Final = 256
# Wall-clock stamps near 2e9 s resolve to about 0.2 µs; a shorter wait is rounding, not a
# reason to refuse.
_RESOLUTION: Final = 1e-6


def charge(body_bytes: int) -> int:
    """What one undelivered message of ``body_bytes`` counts against its sender's quota."""
    return body_bytes + MESSAGE_OVERHEAD


class TokenBucket:
    """``rate`` tokens a second, holding at most ``burst``; starts full."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if not (rate > 0 and burst > 0 and math.isfinite(rate) and math.isfinite(burst)):
            raise ValueError(f"a token bucket needs a positive rate and burst ({rate}, {burst})")
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._stamp = now

    def _refill(self, now: float) -> None:
        # A clock that steps back (wall time, NTP) must not drain the bucket.
        elapsed = max(now - self._stamp, 0.0)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._stamp = now

    def wait(self, cost: float, now: float) -> float:
        """Seconds until ``cost`` tokens are there (0: now). Takes nothing."""
        self._refill(now)
        # A cost over the burst could never be paid; it takes a full bucket instead.
        wait = (min(cost, self.burst) - self._tokens) / self.rate
        return wait if wait > _RESOLUTION else 0.0

    def take(self, cost: float, now: float) -> None:
        self._refill(now)
        self._tokens -= min(cost, self.burst)


@dataclass(frozen=True, slots=True)
class SendPolicy:
    rate: float = 20.0
    burst: int = 100
    bytes_rate: float = 2 * 1024 * 1024
    bytes_burst: int = 16 * 1024 * 1024
    quota: int = 64 * 1024 * 1024

    @classmethod
    def from_config(cls, config: Config) -> SendPolicy:
        return cls(
            rate=config.send_rate,
            burst=config.send_burst,
            bytes_rate=config.send_bytes_rate,
            bytes_burst=config.send_bytes_burst,
            quota=config.undelivered_quota,
        )


class SendLimits:
    """Per-sender admission: :meth:`check` (takes nothing), then :meth:`charge` once stored."""

    def __init__(self, policy: SendPolicy, undelivered: Mapping[str, int]) -> None:
        self.policy = policy
        self._undelivered: dict[str, int] = {k: v for k, v in undelivered.items() if v > 0}
        self._buckets: dict[str, tuple[TokenBucket, TokenBucket]] = {}

    def undelivered(self, sender: str) -> int:
        return self._undelivered.get(sender, 0)

    def check(self, sender: str, body_bytes: int, now: float, *, queued: bool = True) -> None:
        """Raise :class:`QuotaExceeded` or :class:`RateLimited`, or return: the send may go.

        ``queued=False``: the message waits in no inbox (it is for the operator,
        who reads the log), so only the rates apply.
        """
        policy = self.policy
        held = self.undelivered(sender)
        if queued and held + charge(body_bytes) > policy.quota:
            raise QuotaExceeded(
                f"{sender!r} already has {_mib(held)} of messages waiting to be delivered; "
                f"the quota is {_mib(policy.quota)}: wait until recipients read them"
            )
        messages, volume = self._buckets_of(sender, now)
        wait = max(messages.wait(1, now), volume.wait(body_bytes, now))
        if wait > 0:
            raise RateLimited(
                f"{sender!r} is sending too fast (limit {policy.rate:g} messages and "
                f"{_mib(policy.bytes_rate)} a second); retry in {_rounded_up(wait)} s",
                retry_after=wait,
            )

    def charge(self, sender: str, body_bytes: int, now: float, *, queued: bool = True) -> None:
        """The send was stored: spend its tokens and count it as undelivered."""
        messages, volume = self._buckets_of(sender, now)
        messages.take(1, now)
        volume.take(body_bytes, now)
        if queued:
            self._undelivered[sender] = self.undelivered(sender) + charge(body_bytes)

    def delivered(self, sender: str, body_bytes: int) -> None:
        left = self.undelivered(sender) - charge(body_bytes)
        if left > 0:
            self._undelivered[sender] = left
        else:
            self._undelivered.pop(sender, None)

    def _buckets_of(self, sender: str, now: float) -> tuple[TokenBucket, TokenBucket]:
        found = self._buckets.get(sender)
        if found is None:
            policy = self.policy
            found = (
                TokenBucket(policy.rate, policy.burst, now),
                TokenBucket(policy.bytes_rate, policy.bytes_burst, now),
            )
            self._buckets[sender] = found
        return found


def _rounded_up(seconds: float) -> str:
    """Milliseconds, never less than the wait: retrying when told must succeed."""
    return f"{math.ceil(seconds * 1000 - _RESOLUTION) / 1000:.3f}"


def _mib(n: float) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MiB"
    return f"{n / 1024:.1f} KiB"
