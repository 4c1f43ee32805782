"""Each ``hive`` subcommand as one op call and the way its answer is shown."""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from hyperhive.cli import (
    audit,
    render,
    render_config,
    render_dead,
    render_hosts,
    render_usage,
    render_work,
)
from hyperhive.client import Client, call_retrying
from hyperhive.errors import HiveError

Shown = tuple[Any, Callable[[Any], str]]
# One retry of a send whose answer was lost, after the core has had a moment to come back.
SEND_RETRY_PAUSE: Final = 1.0


async def call(client: Client, args: argparse.Namespace) -> Shown:
    command: str = args.command
    if command in ("start", "stop", "restart", "kill"):
        return await client.call(command, name=args.name), render.container
    handler = _COMMANDS.get(command)
    if handler is None:
        raise HiveError(f"unknown command {command!r}")
    return await handler(client, args)


async def _status(client: Client, args: argparse.Namespace) -> Shown:
    return await client.call("status"), render.status


async def _agents(client: Client, args: argparse.Namespace) -> Shown:
    words: list[str] = args.words
    if len(words) == 2 and words[0] == "add":
        extra = {}
        if args.allow_send is not None:
            extra["allow_send"] = [a.strip() for a in args.allow_send.split(",") if a.strip()]
        added = await client.call("agent_add", name=words[1], **extra)
        return added, lambda a: f"added {a['name']} (socket {a['socket']})"
    if len(words) > 1 or args.allow_send is not None:
        raise HiveError("usage: hive agents [NAME | add NAME [--allow-send A,B]]")
    if words:
        found = await client.call("agents", name=words[0])
        return found[0], render.agent
    return await client.call("agents"), render.agents


async def _hosts(client: Client, args: argparse.Namespace) -> Shown:
    return await client.call("hosts"), render_hosts.hosts


async def send_message(socket: Path, args: argparse.Namespace) -> Shown:
    """``hive send`` on connections of its own: an answer lost to a reset or a restarting
    core is asked for once more with the same key (``--key``, or a fresh one), so the
    message is stored once."""
    body = sys.stdin.read() if args.body == "-" else args.body  # read once, for both tries
    key = uuid.uuid4().hex if args.key is None else args.key
    sent = await call_retrying(
        socket, "send", pauses=(SEND_RETRY_PAUSE,), to=args.to, body=body, key=key
    )
    return sent, lambda m: f"sent #{m['id']} to {m['to']}"


async def _messages(client: Client, args: argparse.Namespace) -> Shown:
    extra: dict[str, object] = {"agent": args.agent} if args.agent else {}
    if args.before is not None:
        extra["before"] = args.before
    return await client.call("messages", limit=args.limit, **extra), render.messages


async def _message(client: Client, args: argparse.Namespace) -> Shown:
    return await client.call("message", id=args.id), render.message


async def _dead(client: Client, args: argparse.Namespace) -> Shown:
    extra = {"agent": args.agent} if args.agent else {}
    return await client.call("dead_letters", limit=args.limit, **extra), render_dead.dead_letters


async def _retry(client: Client, args: argparse.Namespace) -> Shown:
    return await client.call("retry", id=args.id), render_dead.retried


async def _drop(client: Client, args: argparse.Namespace) -> Shown:
    return await client.call("drop", id=args.id), render_dead.dropped


async def _spawn(client: Client, args: argparse.Namespace) -> Shown:
    extra = {}
    if args.config is not None:
        try:
            extra["config"] = args.config.read_text()
        except OSError as exc:
            raise HiveError(f"cannot read {args.config}: {exc.strerror}") from None
    if args.host is not None:
        extra["host"] = args.host
    return await client.call("spawn", name=args.name, **extra), render.container


async def _destroy(client: Client, args: argparse.Namespace) -> Shown:
    if not args.yes:
        raise HiveError(f"destroy removes h-{args.name} for good; run again with --yes to confirm")
    done = await client.call("destroy", name=args.name, purge=args.purge)
    return (
        done,
        lambda d: f"destroyed {d['name']}" + (" and purged its state" if d["purged"] else ""),
    )


async def _rebuild(client: Client, args: argparse.Namespace) -> Shown:
    done = await client.call("rebuild")
    return done, lambda d: f"rebuilt: {', '.join(d['rebuilt']) or 'nothing was stale'}"


async def _logs(client: Client, args: argparse.Namespace) -> Shown:
    return await client.call("logs", name=args.name, lines=args.lines), "\n".join


async def _work(client: Client, args: argparse.Namespace) -> Shown:
    if args.fetch:
        return await client.call("work_fetch", name=args.name), render_work.fetched
    return await client.call("work", name=args.name), render_work.work


async def _approvals(client: Client, args: argparse.Namespace) -> Shown:
    return await client.call("approvals", limit=args.limit), render.approvals


async def _approval(client: Client, args: argparse.Namespace) -> Shown:
    return await client.call("approval", id=args.id), render.approval


async def _approve(client: Client, args: argparse.Namespace) -> Shown:
    extra = {"always": True} if args.always else {}
    return await client.call("approve", id=args.id, **extra), render.decided


async def _deny(client: Client, args: argparse.Namespace) -> Shown:
    return await client.call("deny", id=args.id, reason=args.reason), render.decided


async def _rules(client: Client, args: argparse.Namespace) -> Shown:
    extra = {"agent": args.agent} if args.agent else {}
    return await client.call("tool_rules", **extra), render.rules


async def _revoke(client: Client, args: argparse.Namespace) -> Shown:
    done = await client.call("revoke_rule", id=args.rule_id)
    return done, lambda r: f"revoked rule #{r['id']}: {r['agent']} {r['tool']} asks again"


async def _questions(client: Client, args: argparse.Namespace) -> Shown:
    return await client.call("questions", limit=args.limit), render.questions


async def _answer(client: Client, args: argparse.Namespace) -> Shown:
    # A checkbox question takes a list; the others one string (words rejoined).
    listing = await client.call("questions", limit=1)
    asked = {q["id"]: q for q in listing["pending"]}.get(args.id)
    multi = bool(asked and asked.get("multi"))
    given: str | list[str] = list(args.answer) if multi else " ".join(args.answer)
    answered = await client.call("answer", id=args.id, answer=given)
    return answered, lambda q: f"answered question #{q['id']}"


async def _usage(client: Client, args: argparse.Namespace) -> Shown:
    extra: dict[str, object] = {"agent": args.agent} if args.agent else {}
    if args.since is not None:
        extra["since"] = since_day(args.since, datetime.now(UTC).date())
    return await client.call("usage", **extra), render_usage.usage


def since_day(given: str, today: date) -> str:
    """``YYYY-MM-DD`` as it is; ``Nd``: the last N days, today (UTC) included."""
    if given.endswith("d") and given[:-1].isdigit() and 0 < int(given[:-1]) <= 100_000:
        return (today - timedelta(days=int(given[:-1]) - 1)).isoformat()
    return given  # the op checks it, and says what it wants


def _limit(text: str, kind: type[int] | type[float], name: str) -> int | float | None:
    if text.lower() in ("none", "off"):
        return None
    try:
        return kind(text)
    except ValueError:
        raise HiveError(f"{name}: expected a number, or none to lift the limit") from None


async def _budget(client: Client, args: argparse.Namespace) -> Shown:
    if args.resume is not None:
        if args.agent or args.usd_per_day is not None or args.tokens_per_day is not None:
            raise HiveError("usage: hive budget --resume [NAME] (nothing else)")
        extra = {"agent": args.resume} if args.resume else {}
        return await client.call("budget_resume", **extra), render_usage.resumed
    limits: dict[str, object] = {"agent": args.agent} if args.agent else {}
    if args.usd_per_day is not None:
        limits["usd_per_day"] = _limit(args.usd_per_day, float, "--usd-per-day")
    if args.tokens_per_day is not None:
        limits["tokens_per_day"] = _limit(args.tokens_per_day, int, "--tokens-per-day")
    if set(limits) <= {"agent"}:  # no limit given
        raise HiveError(
            "usage: hive budget [--agent NAME] [--usd-per-day X] [--tokens-per-day N]"
            " | hive budget --resume [NAME]"
        )
    return await client.call("budget_set", **limits), render_usage.budget_set


async def _config(client: Client, args: argparse.Namespace) -> Shown:
    if args.action == "reload":
        return await client.call("config_reload"), render_config.reloaded
    return await client.call("config_show"), render_config.show


async def _dashboard_url(client: Client, args: argparse.Namespace) -> Shown:
    return await client.call("dashboard_url"), lambda d: str(d["url"])


_COMMANDS: dict[str, Callable[[Client, argparse.Namespace], Awaitable[Shown]]] = {
    "status": _status,
    "agents": _agents,
    "hosts": _hosts,
    "messages": _messages,
    "message": _message,
    "dead": _dead,
    "retry": _retry,
    "drop": _drop,
    "spawn": _spawn,
    "destroy": _destroy,
    "rebuild": _rebuild,
    "logs": _logs,
    "approvals": _approvals,
    "approval": _approval,
    "work": _work,
    "approve": _approve,
    "deny": _deny,
    "rules": _rules,
    "revoke": _revoke,
    "questions": _questions,
    "answer": _answer,
    "dashboard-url": _dashboard_url,
    "usage": _usage,
    "budget": _budget,
    "audit": audit.command,
    "config": _config,
}
