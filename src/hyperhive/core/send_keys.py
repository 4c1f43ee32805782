"""Idempotent sends: a client's key names one message of its sender's for a window.

A client that may retry a send (its connection died before the answer) gives the send a
key. While the window lasts, the same key from the same sender is answered with the
message it first stored, and nothing new is stored; another sender's key is another
name. Plain code without I/O: the broker looks the key up and tells this module what it
found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from hyperhive.errors import BadRequest

MAX_KEY: Final = 128
DEFAULT_WINDOW: Final = 24 * 3600.0
# Printable ASCII, space to tilde: safe in a terminal, a log line and a URL-ish id alike.
_KEY: Final = re.compile(rf"[\x20-\x7e]{{1,{MAX_KEY}}}")


def check_key(value: object) -> str | None:
    """The key of a send, or None when it has none; anything else is :class:`BadRequest`."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest("argument 'key' must be a string")
    if not _KEY.fullmatch(value):
        raise BadRequest(
            f"argument 'key' must be 1-{MAX_KEY} printable ASCII characters"
            f" (got {len(value)} character(s))"
        )
    return value


@dataclass(frozen=True, slots=True)
class Keyed:
    """What a sender's key names in the log: a stored message's id, recipient, body, age."""

    id: int
    recipient: str
    body: str
    created_at: float


def replayed(found: Keyed | None, to: object, body: object, now: float, window: float) -> bool:
    """Whether a keyed send is a retry of ``found``: answer it with ``found``, store nothing.

    False: store the send (``found`` is None, or older than the window and so free to name
    a new message). A live key sent with another recipient or body is a client's mistake,
    not a retry, and is refused: storing it would break the key's promise, dropping it
    would lose the new message.
    """
    # A clock stepped back makes a message look younger, never free to be sent twice.
    if found is None or now - found.created_at >= window:
        return False
    if to != found.recipient or body != found.body:
        raise BadRequest(
            f"key already names message #{found.id} (to {found.recipient!r}) with another"
            " recipient or body; a new message needs a new key"
        )
    return True
