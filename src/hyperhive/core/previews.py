"""Bounded views of messages: a body longer than a preview is cut, a page stops at a budget.

Plain code without I/O, shared by the ``messages`` op, ``tail``, and the dashboard's views
and live feed, so every reader of the log sees the same shape: a cut message carries
``"truncated": true`` and ``"size"`` (the whole body's UTF-8 bytes); the ``message`` op
gives it whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Final

PREVIEW_BYTES: Final = 4 * 1024
# What one page of the log may weigh, JSON-encoded: a flood of 256 KiB bodies must not
# turn the default view into tens of megabytes.
PAGE_BYTES: Final = 1024 * 1024

Wire = dict[str, Any]


def cut(text: str, limit: int) -> str:
    """The longest prefix of ``text`` that is at most ``limit`` UTF-8 bytes."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    # Dropping the bytes of a character split at the edge keeps the prefix valid UTF-8.
    return data[:limit].decode("utf-8", "ignore")


def shortened(wire: Wire, prefix: str, size: int, limit: int = PREVIEW_BYTES) -> Wire:
    """``wire`` with ``prefix`` as its body: cut to ``limit`` bytes if the whole is longer.

    ``prefix`` is the body's start (at least ``limit`` characters of it, or all) and
    ``size`` the whole body's bytes, so a caller need not load a long body to show it.
    """
    if size <= limit:
        return {**wire, "body": prefix}
    return {**wire, "body": cut(prefix, limit), "truncated": True, "size": size}


def preview(wire: Wire, limit: int = PREVIEW_BYTES) -> Wire:
    """A whole wire message, its body cut to a preview when it is longer."""
    body = wire.get("body")
    if not isinstance(body, str) or len(body) * 4 <= limit:
        return wire  # four bytes a character at most: surely short enough
    size = len(body.encode("utf-8", "surrogatepass"))
    return shortened(wire, body[:limit], size, limit)


def encoded_size(wire: Wire) -> int:
    """Bytes of ``wire`` as the sockets send it (compact JSON, UTF-8)."""
    text = json.dumps(wire, ensure_ascii=False, separators=(",", ":"), default=str)
    return len(text.encode("utf-8", "surrogatepass"))


def within(newest_first: Iterable[Wire], budget: int = PAGE_BYTES) -> list[Wire]:
    """The newest messages whose encoded sizes fit in ``budget``, oldest first.

    The newest always goes in, so paging back with ``before`` always makes progress.
    """
    taken: list[Wire] = []
    spent = 2  # the list's brackets; each item adds its comma
    for wire in newest_first:
        spent += encoded_size(wire) + 1
        if taken and spent > budget:
            break
        taken.append(wire)
    return taken[::-1]
