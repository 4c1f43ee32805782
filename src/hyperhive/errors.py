"""The small tree of errors hyperhive raises.

Every error a client can cause carries a stable ``code`` that travels over the
wire unchanged, so scripts can branch on it and people can read the message.
"""

from __future__ import annotations


class HiveError(Exception):
    """Base of every error hyperhive raises on purpose."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_wire(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class ClientError(HiveError):
    """The request was wrong; nothing was changed."""

    code = "bad_request"


class BadRequest(ClientError):
    code = "bad_request"


class UnknownOp(ClientError):
    code = "unknown_op"


class Forbidden(ClientError):
    """The op exists but not for the caller's role."""

    code = "forbidden"


class BadName(ClientError):
    code = "bad_name"


class UnknownAgent(ClientError):
    code = "unknown_agent"


class AlreadyExists(ClientError):
    code = "exists"


class NotAllowed(ClientError):
    """The sender's allow-list does not include the recipient."""

    code = "not_allowed"


class BadConfig(ClientError):
    """An agent's config (``agent.toml``) that may not be used; the message names the field."""

    code = "bad_config"


class TooLarge(ClientError):
    code = "too_large"


class EmptyBody(ClientError):
    code = "empty_body"


class UnknownLease(ClientError):
    code = "unknown_lease"


class UnknownMessage(ClientError):
    code = "unknown_message"


class RateLimited(ClientError):
    """The sender is over its send rate; the message says when to retry."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class QuotaExceeded(ClientError):
    """The caller holds as much as it may (undelivered bytes, pending questions)."""

    code = "quota"


class TimedOut(ClientError):
    """The client took too long: a line left unfinished, or a connection left idle."""

    code = "timeout"


class Busy(HiveError):
    """A connection cap is reached; the connection is refused, try again later."""

    code = "busy"


class ShuttingDown(HiveError):
    code = "shutting_down"


class ProtocolError(HiveError):
    """The peer broke the wire protocol (client side: an unreadable answer)."""

    code = "protocol"


class StoreError(HiveError):
    """The database cannot be used: corrupt, or written by a newer hyperhive."""

    code = "store"


class DatabaseError(StoreError):
    """A statement failed in the database (busy, gone, closed, or refused)."""


class ConfigError(HiveError):
    code = "config"
