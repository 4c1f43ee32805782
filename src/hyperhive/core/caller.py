"""Who is on the other end of a socket: the identity the socket stands for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["operator", "agent", "manager"]


@dataclass(eq=False)
class Caller:
    """Who is on the other end of one connection; also the holder of its leases."""

    name: str
    role: Role
