"""The operator's settings that can change while the hive runs: notification sinks,
approval policies, stall thresholds, budgets and gateway caps.

They come from ``hive.toml`` (parsed by :mod:`hyperhive.settings_file`), are resolved
into one frozen :class:`Settings`, and are held by a :class:`LiveSettings` that the
services read at the moment they decide, so a reload (SIGHUP, ``hive config reload``)
takes effect without a restart and without dropping a connection. What cannot change
live (directories, the listen address, the backend) stays in :class:`hyperhive.config.Config`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal

# The notification events (core/notify/): what an operator can be told about.
NOTIFY_EVENTS: Final = ("approval", "question", "failed", "budget", "stall", "digest")
PolicyKind = Literal["spawn", "apply_commit", "tool_use"]
PolicyDecision = Literal["approve", "deny"]


@dataclass(frozen=True, slots=True)
class WebhookSink:
    """A JSON POST; with a ``secret``, signed: ``X-Hyperhive-Signature: sha256=<hex HMAC
    of the body>``. ``events`` None: every event."""

    name: str
    url: str
    secret: str | None = field(default=None, repr=False)
    events: frozenset[str] | None = None
    timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class NtfySink:
    """ntfy's HTTP publish API: a POST of the message to ``url`` (server and topic), with
    Title, Priority, Tags and Click headers; ``token`` as a Bearer header."""

    name: str
    url: str
    token: str | None = field(default=None, repr=False)
    priority: int | None = None  # None: per event (approvals and failures high)
    tags: tuple[str, ...] = ()
    events: frozenset[str] | None = None
    timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class CommandSink:
    """A command run with the notification as JSON on its stdin; exit 0 is delivered."""

    name: str
    argv: tuple[str, ...]
    events: frozenset[str] | None = None
    timeout: float = 30.0


Sink = WebhookSink | NtfySink | CommandSink


@dataclass(frozen=True, slots=True)
class NotifySettings:
    sinks: tuple[Sink, ...] = ()
    max_tries: int = 10  # then dropped, with a record of it
    backoff_first: float = 1.0  # seconds before the second try; doubles each time
    backoff_max: float = 300.0
    # Per sink: more than ``digest_after`` notifications within ``digest_window`` seconds
    # go out as one digest.
    digest_after: int = 5
    digest_window: float = 10.0
    # The dashboard's address as the operator reaches it, for the links in notifications;
    # None: the core's own listen address.
    dashboard_url: str | None = None


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """One operator rule that decides a class of requests without a click (core/policy.py).

    Every condition given must hold; the first rule that matches decides."""

    name: str
    kind: PolicyKind
    decision: PolicyDecision
    agent: str | None = None  # fnmatch pattern on the agent's name
    requester: str | None = None  # fnmatch pattern on who asked
    # apply_commit: every changed field of agent.toml is one of these (dotted names such
    # as "role", "model", "budget.usd_per_day"), and no other file changed.
    fields: frozenset[str] | None = None
    # spawn: while fewer than this many agents exist (the manager counts).
    max_agents: int | None = None
    # tool_use: the tool's name (fnmatch) and a regular expression its input, as
    # canonical JSON, must match in full.
    tool: str | None = None
    input: str | None = None


@dataclass(frozen=True, slots=True)
class StallSettings:
    """When something has waited too long (core/stall.py); None: never a stall."""

    thinking: float | None = 600.0  # a turn with no engine event for this long
    approval: float | None = 3600.0  # an approval or question pending for this long
    # A message leased and not acked for this long: below the lease itself (900 s by
    # default), so the operator hears before the message goes back to the queue.
    lease: float | None = 600.0


@dataclass(frozen=True, slots=True)
class Settings:
    notify: NotifySettings = NotifySettings()
    policies: tuple[PolicyRule, ...] = ()
    stall: StallSettings = StallSettings()
    # The hive-wide daily budget; None: no limit of that kind (core/gateway/meter.py).
    budget_usd_per_day: float | None = None
    budget_tokens_per_day: int | None = None
    # The gateway's caps on concurrent upstream requests (core/gateway/admission.py).
    gateway_concurrency: int | None = None  # None: the Config's
    gateway_per_agent: int | None = None


class LiveSettings:
    """The settings in force now. Services call :meth:`current` when they decide rather
    than keeping a copy; those that hold derived state subscribe with :meth:`watch`."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._current = settings if settings is not None else Settings()
        self._watchers: list[Callable[[Settings], None]] = []

    def current(self) -> Settings:
        return self._current

    def watch(self, watcher: Callable[[Settings], None]) -> Callable[[], None]:
        """Call ``watcher`` with the new settings after every replace; the answer stops it."""
        self._watchers.append(watcher)
        return lambda: self._watchers.remove(watcher)

    def replace(self, settings: Settings) -> None:
        self._current = settings
        for watcher in list(self._watchers):
            watcher(settings)
