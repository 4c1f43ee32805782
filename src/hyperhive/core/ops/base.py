"""The shape of an op: who calls it (the socket's identity) and its handler."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from hyperhive.core.protocol import Args

if TYPE_CHECKING:
    from hyperhive.core.hive import Hive

Role = Literal["operator", "agent", "manager"]


@dataclass(eq=False)
class Caller:
    """Who is on the other end of one connection; also the holder of its leases."""

    name: str
    role: Role


Handler = Callable[["Hive", Caller, Args], Awaitable[Any]]
Streamer = Callable[["Hive", Caller, Args], AsyncIterator[dict[str, Any]]]
