"""Behind the core's model gateway the login is the core's: it holds the credentials, and
the operator saves them on the agent's page, which the core answers itself. This watch
keeps the harness's notion of "logged in" in step with the core's store, without ever
seeing a secret: ``login_state`` says whether the core holds a credential for us, and,
given the store's generation we last saw, waits (a long poll) until it changes.

A change that leaves a credential for us marks the agent logged in, which wakes a
message held back for a login (agent/core_link.py) within moments of the save; one
that leaves none marks it logged out. A login failure of a turn (a 401 from the gateway)
marks it logged out too (agent/turns.py), and only the next change undoes that.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Final

from hyperhive.agent.presence import Presence
from hyperhive.client import Client
from hyperhive.errors import HiveError

log = logging.getLogger(__name__)
LOGIN_WAIT: Final = 30.0  # one long poll; the core bounds it at 60 s
RETRY_START: Final = 0.1
RETRY_MAX: Final = 5.0


async def watch_logins(socket: Path, presence: Presence) -> None:
    """Until cancelled: the core's word on our login, into ``presence``."""
    seen: int | None = None
    pause = RETRY_START
    while True:
        try:
            async with await Client.connect(socket) as client:
                got = await client.call("login_state")
                seen = _apply(presence, got, seen, first=True)
                pause = RETRY_START
                while True:
                    got = await client.call("login_state", after=seen, wait=LOGIN_WAIT)
                    seen = _apply(presence, got, seen, first=False)
        except (HiveError, OSError) as exc:
            # The core is away (restarting, or busy): the lease loop says so on the badge.
            log.debug("cannot ask the core about a login: %s", exc)
        await asyncio.sleep(pause)  # a bounded backoff between reconnects, not a test wait
        pause = min(pause * 2, RETRY_MAX)


def _apply(presence: Presence, got: Any, seen: int | None, *, first: bool) -> int:
    generation = int(got["generation"])
    if first or generation != seen:
        presence.set(logged_in=bool(got["available"]))
    return generation
