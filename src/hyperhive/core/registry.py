"""The agents registry: who exists in the hive, their role, send allow-list, page port
and host.

The table is the source of truth; a copy lives in memory because every send
consults it. Cores of other hosts sharing the store change rows too: they say so
(core/db/signals.py) and :meth:`Registry.reload` reads the row again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

from hyperhive.core.db import Database
from hyperhive.core.db.signals import AGENTS, LocalSignals, Signals
from hyperhive.core.ports import backfill, choose_port
from hyperhive.errors import AlreadyExists, BadRequest, UnknownAgent
from hyperhive.names import MANAGER, OPERATOR, validate_agent_name

Role = Literal["agent", "manager"]
ALL: Final = "*"
DEFAULT_ALLOW_SEND: Final = (MANAGER, OPERATOR)
# Longer than any agent name: a send to a longer one costs the store no lookup.
MAX_LOOKUP: Final = 64
# The host of a core told no other name (tests, and hives that never share a store).
LOCAL: Final = "local"


@dataclass(frozen=True, slots=True)
class AgentRecord:
    name: str
    role: Role
    allow_send: tuple[str, ...]
    created_at: float
    port: int | None = None  # its page's TCP port (core/ports.py); None: no port was left
    host: str = ""  # the host whose core runs it (core/hosts/)

    def to_wire(self) -> dict[str, object]:
        return {
            "name": self.name,
            "role": self.role,
            "allow_send": list(self.allow_send),
            "created_at": self.created_at,
            "port": self.port,
            "host": self.host,
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


_COLUMNS: Final = "name, role, allow_send, created_at, port, host"


def _record(row: tuple[Any, ...]) -> AgentRecord:
    name, role, allow, created, port, host = row
    return AgentRecord(name, role, tuple(json.loads(allow)), created, port, host)


class Registry:
    def __init__(self, conn: Database, host: str = LOCAL, signals: Signals | None = None) -> None:
        """``host``: this core's host name; agents without one (from before hosts) are its.
        A store no other host shares is this host's alone: every agent is its, even after
        the machine was renamed."""
        self._conn = conn
        self.host = host
        self._signals = signals if signals is not None else LocalSignals()
        self._signals.listen(AGENTS, self._signalled)
        self._watchers: list[Callable[[str, AgentRecord | None], None]] = []
        self._removals: list[Callable[[AgentRecord], None]] = []
        if conn.shared:
            conn.execute("UPDATE agents SET host = ? WHERE host IS NULL", (host,))
        else:
            conn.execute("UPDATE agents SET host = ? WHERE host IS NULL OR host != ?", (host, host))
        self._agents: dict[str, AgentRecord] = {}
        for row in conn.execute(f"SELECT {_COLUMNS} FROM agents ORDER BY name"):
            self._agents[row[0]] = _record(row)
        self._assign_missing_ports()

    def reload(self, name: str) -> AgentRecord | None:
        """Read ``name``'s row again (another host changed it); None: it is gone."""
        row = self._conn.execute(f"SELECT {_COLUMNS} FROM agents WHERE name = ?", (name,))
        found = row.fetchone()
        if found is None:
            self._agents.pop(name, None)
            return None
        record = self._agents[name] = _record(found)
        return record

    def watch(self, watcher: Callable[[str, AgentRecord | None], None]) -> None:
        """Call ``watcher(name, record or None)`` when another host changed an agent."""
        self._watchers.append(watcher)

    def watch_removed(self, watcher: Callable[[AgentRecord], None]) -> None:
        """Call ``watcher(record as it was)`` when another host removed an agent known here."""
        self._removals.append(watcher)

    def _signalled(self, name: str) -> None:
        before = self._agents.get(name)
        record = self.reload(name)
        if record == before:
            return  # our own change, come back as a signal: already known here
        for watcher in self._watchers:
            watcher(name, record)
        if record is None and before is not None:
            for removed in self._removals:
                removed(before)

    def is_local(self, name: str) -> bool:
        """Whether ``name`` runs on this host (a name that is not an agent does not)."""
        record = self._agents.get(name)
        return record is not None and record.host == self.host

    def local(self) -> list[AgentRecord]:
        """The agents this host runs, by name."""
        return [a for a in self.all() if a.host == self.host]

    def _assign_missing_ports(self) -> None:
        """Rows from before ports were assigned (schema 6) get theirs, once, in one commit."""
        assigned = backfill({a.name: a.port for a in self._agents.values()})
        if not assigned:
            return
        with self._conn.transaction():
            self._conn.executemany(
                "UPDATE agents SET port = ? WHERE name = ?", [(p, n) for n, p in assigned.items()]
            )
        for name, port in assigned.items():
            self._agents[name] = replace(self._agents[name], port=port)

    def __contains__(self, name: object) -> bool:
        return name in self._agents

    def knows(self, name: str) -> bool:
        """Whether ``name`` is an agent, asking a shared store before saying no: another
        host's core may have added it a moment ago, its signal still on the way."""
        if name in self._agents:
            return True
        return self._conn.shared and len(name) <= MAX_LOOKUP and self.reload(name) is not None

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

    def add(
        self, name: object, allow_send: Iterable[str] | None = None, *, host: str | None = None
    ) -> AgentRecord:
        """Register ``name``, run by ``host`` (default: this one)."""
        name = validate_agent_name(name)
        if name in self._agents:
            raise AlreadyExists(f"agent {name!r} already exists")
        allow = validate_allow_send(list(DEFAULT_ALLOW_SEND if allow_send is None else allow_send))
        role: Role = "manager" if name == MANAGER else "agent"
        record = AgentRecord(
            name, role, allow, time.time(), self.port_for_new(name), host or self.host
        )
        self._conn.execute(
            f"INSERT INTO agents ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
            (name, role, json.dumps(list(allow)), record.created_at, record.port, record.host),
        )
        self._agents[name] = record
        self._signals.notify(AGENTS, name)
        return record

    def set_allow_send(self, name: str, allow_send: Iterable[str]) -> AgentRecord:
        """The applied config changed whom ``name`` may message."""
        old = self.get(name)
        allow = validate_allow_send(list(allow_send))
        self._conn.execute(
            "UPDATE agents SET allow_send = ? WHERE name = ?", (json.dumps(list(allow)), name)
        )
        self._agents[name] = replace(old, allow_send=allow)
        self._signals.notify(AGENTS, name)
        return self._agents[name]

    def remove(self, name: str) -> None:
        """``name`` is gone, and its page port free for the next agent."""
        self.get(name)
        self._conn.execute("DELETE FROM agents WHERE name = ?", (name,))
        del self._agents[name]
        self._signals.notify(AGENTS, name)

    def may_send(self, sender: str, recipient: str) -> bool:
        """Operator and manager may message anyone; agents follow their allow-list."""
        if sender == OPERATOR:
            return True
        record = self.get(sender)
        if record.role == "manager":
            return True
        return ALL in record.allow_send or recipient in record.allow_send
