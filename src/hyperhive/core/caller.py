"""Who is on the other end of a socket: the identity the socket stands for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["operator", "agent", "manager"]


@dataclass(eq=False)
class Caller:
    """Who is on the other end of one connection; also the holder of its leases.

    ``via``: the surface it acts through, as the audit log records it (``cli`` for
    ``host.sock``, ``dashboard`` for the operator's desk); by default its role."""

    name: str
    role: Role
    via: str = ""

    def __post_init__(self) -> None:
        if not self.via:
            self.via = self.role
