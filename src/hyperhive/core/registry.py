"""The agents registry: who exists in the hive, their role, send allow-list and page port.

The table is the source of truth; a copy lives in memory because every send
consults it. Until agent configs exist, the allow-list is kept here.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from hyperhive.core.ports import backfill, choose_port
from hyperhive.errors import AlreadyExists, BadRequest, UnknownAgent
from hyperhive.names import MANAGER, OPERATOR, validate_agent_name

Role = Literal["agent", "manager"]
ALL: Final = "*"
DEFAULT_ALLOW_SEND: Final = (MANAGER, OPERATOR)


@dataclass(frozen=True, slots=True)
class AgentRecord:
    name: str
    role: Role
    allow_send: tuple[str, ...]
    created_at: float
    port: int | None = None  # its page's TCP port (core/ports.py); None: no port was left

    def to_wire(self) -> dict[str, object]:
        return {
            "name": self.name,
            "role": self.role,
            "allow_send": list(self.allow_send),
            "created_at": self.created_at,
            "port": self.port,
        }


def validate_allow_send(value: object) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise BadRequest("allow_send must be a list of names")
    names: list[str] = []
    for entry in value:
        if entry not in (ALL, OPERATOR, MANAGER):
            validate_agent_name(entry)
        if entry not in names:
            names.append(entry)
    return tuple(names)


class Registry:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._agents: dict[str, AgentRecord] = {}
        for name, role, allow, created, port in conn.execute(
            "SELECT name, role, allow_send, created_at, port FROM agents ORDER BY name"
        ):
            self._agents[name] = AgentRecord(name, role, tuple(json.loads(allow)), created, port)
        self._assign_missing_ports()

    def _assign_missing_ports(self) -> None:
        """Rows from before ports were assigned (schema 6) get theirs, once, in one commit."""
        assigned = backfill({a.name: a.port for a in self._agents.values()})
        if not assigned:
            return
        with self._conn:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany(
                "UPDATE agents SET port = ? WHERE name = ?", [(p, n) for n, p in assigned.items()]
            )
        for name, port in assigned.items():
            old = self._agents[name]
            self._agents[name] = AgentRecord(name, old.role, old.allow_send, old.created_at, port)

    def __contains__(self, name: object) -> bool:
        return name in self._agents

    def all(self) -> list[AgentRecord]:
        return sorted(self._agents.values(), key=lambda a: a.name)

    def get(self, name: str) -> AgentRecord:
        try:
            return self._agents[name]
        except KeyError:
            raise UnknownAgent(f"no agent named {name!r}") from None

    def port_for_new(self, name: str) -> int:
        """The page port a new agent ``name`` would get now; none left is :class:`QuotaExceeded`
        (so a caller can refuse before it makes anything)."""
        return choose_port(name, {a.port for a in self._agents.values() if a.port is not None})

    def add(self, name: object, allow_send: Iterable[str] | None = None) -> AgentRecord:
        name = validate_agent_name(name)
        if name in self._agents:
            raise AlreadyExists(f"agent {name!r} already exists")
        allow = validate_allow_send(list(DEFAULT_ALLOW_SEND if allow_send is None else allow_send))
        role: Role = "manager" if name == MANAGER else "agent"
        record = AgentRecord(name, role, allow, time.time(), self.port_for_new(name))
        self._conn.execute(
            "INSERT INTO agents (name, role, allow_send, created_at, port) VALUES (?, ?, ?, ?, ?)",
            (name, role, json.dumps(list(allow)), record.created_at, record.port),
        )
        self._agents[name] = record
        return record

    def set_allow_send(self, name: str, allow_send: Iterable[str]) -> AgentRecord:
        """The applied config changed whom ``name`` may message."""
        old = self.get(name)
        allow = validate_allow_send(list(allow_send))
        self._conn.execute(
            "UPDATE agents SET allow_send = ? WHERE name = ?", (json.dumps(list(allow)), name)
        )
        self._agents[name] = AgentRecord(name, old.role, allow, old.created_at, old.port)
        return self._agents[name]

    def remove(self, name: str) -> None:
        """``name`` is gone, and its page port free for the next agent."""
        self.get(name)
        self._conn.execute("DELETE FROM agents WHERE name = ?", (name,))
        del self._agents[name]

    def may_send(self, sender: str, recipient: str) -> bool:
        """Operator and manager may message anyone; agents follow their allow-list."""
        if sender == OPERATOR:
            return True
        record = self.get(sender)
        if record.role == "manager":
            return True
        return ALL in record.allow_send or recipient in record.allow_send
