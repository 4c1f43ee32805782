"""Whether a send may be stored: its recipient, its body, the sender's allow-list and, last
(a refused send spends no tokens), the sender's limits. Nothing is stored or counted here:
the broker counts the refusal, unless the send retries one it accepted (core/key_claims.py).
"""

from __future__ import annotations

from hyperhive.core.limits import SendLimits
from hyperhive.core.registry import Registry
from hyperhive.errors import (
    BadRequest,
    EmptyBody,
    HiveError,
    NotAllowed,
    QuotaExceeded,
    RateLimited,
    TooLarge,
    UnknownAgent,
)
from hyperhive.names import OPERATOR


class Refused(Exception):
    """A send that may not be stored: the refusal it counts as, and the error to raise."""

    def __init__(self, reason: str, error: HiveError) -> None:
        super().__init__(reason)
        self.reason, self.error = reason, error


def admit(
    registry: Registry,
    limits: SendLimits,
    max_body: int,
    sender: str,
    to: object,
    body: object,
    now: float,
) -> int:
    """The body's size in bytes if ``sender`` may send it to ``to`` now, else :class:`Refused`."""
    if not isinstance(to, str) or (to != OPERATOR and not registry.knows(to)):
        raise Refused("unknown_recipient", UnknownAgent(f"no participant named {to!r}"))
    if not isinstance(body, str) or not body.strip():
        raise Refused("empty_body", EmptyBody("message body is empty"))
    try:
        size = len(body.encode())
    except UnicodeEncodeError:  # a lone surrogate, which JSON can carry and UTF-8 cannot
        raise Refused("bad_text", BadRequest("message body is not valid Unicode text")) from None
    if size > max_body:
        why = f"message body is {size} bytes; the limit is {max_body}"
        raise Refused("too_large", TooLarge(why))
    if not registry.may_send(sender, to):
        why = f"{sender!r} may not message {to!r} (not in its allow_send)"
        raise Refused("not_allowed", NotAllowed(why))
    if sender != OPERATOR:  # the human is not throttled by the hive they run
        try:
            limits.check(sender, size, now, queued=to != OPERATOR)
        except (RateLimited, QuotaExceeded) as exc:
            raise Refused(exc.code, exc) from None
    return size
