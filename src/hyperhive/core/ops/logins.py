"""Login ops: the operator stores credentials in the core (never in a container), runs
the setup-token flow there, and asks where an agent's credential comes from; an agent
asks only whether it has one, and may wait for that to change.

No answer and no event carries a credential's value: ``login_save`` answers with the
status, ``login_setup_finish`` stores the token it got and says so.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Final

from hyperhive.core.bus import Event
from hyperhive.core.gateway.credentials import HiveCredentials
from hyperhive.core.gateway.setup_token import SetupTokens
from hyperhive.core.ops.audit import record
from hyperhive.core.ops.base import Caller, Services, agent_or_hive
from hyperhive.core.protocol import Args
from hyperhive.errors import HiveError

MAX_VALUE: Final = 4096
MAX_WAIT: Final = 60.0


class LoginsOff(HiveError):
    code = "logins_off"


def _credentials(s: Services) -> HiveCredentials:
    if s.credentials is None:
        raise LoginsOff("this hive-c0re keeps no credentials")
    return s.credentials


def _setup(s: Services) -> SetupTokens:
    if s.setup_tokens is None:
        raise LoginsOff("this hive-c0re runs no setup-token flow")
    return s.setup_tokens


async def login_save(s: Services, caller: Caller, args: Args) -> Any:
    agent = agent_or_hive(s, args)
    kind = args.text("kind")
    value = args.text("value")[: MAX_VALUE + 1]
    args.finish()
    credentials = _credentials(s)
    credentials.save(kind, value, agent)
    record(s, caller, "login_saved", agent, {"kind": kind})  # never the value
    return {"agent": agent, "saved": kind}


async def login_clear(s: Services, caller: Caller, args: Args) -> Any:
    agent = agent_or_hive(s, args)
    args.finish()
    cleared = _credentials(s).clear(agent)
    record(s, caller, "login_cleared", agent, {"cleared": cleared})
    return {"agent": agent, "cleared": cleared}


async def login_status(s: Services, caller: Caller, args: Args) -> Any:
    agent = args.text("agent")
    args.finish()
    s.registry.get(agent)
    # Where its requests' credential would come from: its own, the hive's, the core's env.
    return _credentials(s).status(agent)


async def login_setup_start(s: Services, caller: Caller, args: Args) -> Any:
    agent = args.text("agent")
    args.finish()
    s.registry.get(agent)
    return {"url": await _setup(s).start(agent)}


async def login_setup_finish(s: Services, caller: Caller, args: Args) -> Any:
    agent = args.text("agent")
    code = args.text("code")
    hive = args.flag("hive")
    args.finish()
    s.registry.get(agent)
    credentials = _credentials(s)
    token = await _setup(s).finish(agent, code)
    credentials.save("oauth_token", token, None if hive else agent)
    record(s, caller, "login_saved", None if hive else agent, {"kind": "oauth_token"})
    return {"agent": None if hive else agent, "saved": "oauth_token"}


async def login_state(s: Services, caller: Caller, args: Args) -> Any:
    """The calling agent's: ``{"available", "generation"}``. With ``after`` (a generation
    it saw) and ``wait``: answers once the store changed from it, or after ``wait``."""
    after = args.integer("after", -1, -1, 2**62)
    wait = args.number("wait", 0.0, 0.0, MAX_WAIT)
    args.finish()
    credentials = _credentials(s)
    if wait and credentials.generation == after:
        # Subscribed before looking again, so a save in between is not missed; the bus
        # closing (shutdown) ends the wait too.
        subscription = s.bus.subscribe(depth=4, wants=functools.partial(_ours, caller.name))
        try:
            if credentials.generation == after:
                async with asyncio.timeout(wait):
                    async for _ in subscription:
                        break
        except TimeoutError:
            pass
        finally:
            s.bus.unsubscribe(subscription)
    return {
        "available": credentials.for_agent(caller.name) is not None,
        "generation": credentials.generation,
    }


def _ours(agent: str, event: Event) -> bool:
    """A login saved for ``agent`` or for the whole hive (the bus asks, for each event)."""
    return event.get("type") == "login" and event.get("agent") in (None, agent)
