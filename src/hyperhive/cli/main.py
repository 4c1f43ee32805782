"""``hive``: one subcommand per op on ``host.sock``; tables for people, ``--json`` for scripts."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from hyperhive import config as hive_config
from hyperhive.cli import render
from hyperhive.cli.commands import call, send_message
from hyperhive.client import Client
from hyperhive.errors import HiveError

Arg = tuple[tuple[str, ...], dict[str, Any]]  # add_argument's names and options


def arg(*names: str, **options: Any) -> Arg:
    return names, options


NAME: Final = arg("name")
ID: Final = arg("id", type=int)
LIFECYCLE: Final = (
    ("start", "start an agent's container"),
    ("stop", "stop an agent's container"),
    ("restart", "restart an agent's container"),
    ("kill", "stop an agent's container now"),
)
# Each subcommand: its name, its help, its arguments; in the order help lists them.
COMMANDS: Final[tuple[tuple[str, str, tuple[Arg, ...]], ...]] = (
    ("status", "daemon status", ()),
    (
        "agents",
        "list agents; NAME: one agent, with its tool policy; add NAME: register one",
        (
            # Words rather than subcommands: "hive agents bob" must not be an unknown subcommand.
            arg("words", nargs="*", metavar="NAME | add NAME"),
            arg("--allow-send", help="add: comma-separated names this agent may message"),
        ),
    ),
    ("hosts", "the cores sharing the store: up or down, their load and agents", ()),
    (
        "send",
        "message an agent as the operator",
        (
            arg("--to", required=True),
            arg(
                "--key",
                help="idempotency key: the same key again stores nothing new (default: fresh)",
            ),
            arg("body", help="the message; '-' reads standard input"),
        ),
    ),
    (
        "messages",
        "the message log",
        (
            arg("--agent"),
            arg("--limit", type=int, default=50),
            arg("--before", type=int, help="only messages older than this id"),
        ),
    ),
    ("message", "one whole message", (ID,)),
    (
        "dead",
        "dead letters: messages that failed too often, waiting for you",
        (
            arg("agent", nargs="?", help="only those to this agent"),
            arg("--limit", type=int, default=50),
        ),
    ),
    ("retry", "put a dead letter back into its recipient's queue", (ID,)),
    ("drop", "mark a dead letter delivered for good", (ID,)),
    ("tail", "stream messages and core events", ()),
    (
        "spawn",
        "create and start an agent (no approval needed)",
        (
            NAME,
            arg("--config", type=Path, help="an agent.toml to seed its config repo"),
            arg("--host", help="the host whose core runs it (default: this one)"),
        ),
    ),
    *((name, text, (NAME,)) for name, text in LIFECYCLE),
    (
        "destroy",
        "stop and remove an agent's container for good",
        (
            NAME,
            arg("--yes", action="store_true", help="really destroy it"),
            arg("--purge", action="store_true", help="also delete its state and configs"),
        ),
    ),
    ("rebuild", "rebuild containers whose hyperhive rev or config is stale", ()),
    (
        "logs",
        "an agent container's recent output",
        (NAME, arg("--lines", type=int, default=200)),
    ),
    (
        "work",
        "an agent's workspace: its branch, commits, diffstat and diff",
        (
            NAME,
            arg(
                "--fetch",
                action="store_true",
                help="bring its branch into the host repo as hive/NAME",
            ),
        ),
    ),
    ("approvals", "pending and recent approvals", (arg("--limit", type=int, default=20),)),
    ("approval", "one approval, with its config diff", (ID,)),
    (
        "approve",
        "approve a pending request",
        (
            ID,
            arg(
                "--always", action="store_true", help="a tool use: also allow every identical call"
            ),
        ),
    ),
    ("deny", "deny a pending request", (ID, arg("--reason", required=True))),
    (
        "rules",
        "the tool uses approved always (active and revoked)",
        (arg("agent", nargs="?", help="only this agent's"),),
    ),
    (
        "revoke",
        "revoke a tool rule: identical calls ask again",
        (arg("rule_id", type=int),),
    ),
    ("questions", "the manager's questions", (arg("--limit", type=int, default=20),)),
    (
        "answer",
        "answer a question (several values for a checkbox question)",
        (ID, arg("answer", nargs="+")),
    ),
    ("dashboard-url", "the dashboard's URL with the operator token, to open it", ()),
    (
        "audit",
        "who did what, from the hash-chained audit log; verify: check the chain",
        (
            arg("action", nargs="?", choices=("verify",), help="check every entry's hash"),
            arg("--since", help="from this long ago (30m, 2h, 7d) or this ISO time"),
            arg("--agent", help="only entries about this agent"),
            arg("--limit", type=int, default=50, help="the newest N entries"),
        ),
    ),
    (
        "usage",
        "model spend per day per agent, and today's state against each budget",
        (
            arg("--agent", help="only this agent's"),
            arg("--since", help="from this UTC day (YYYY-MM-DD), or the last N days (Nd)"),
        ),
    ),
    (
        "budget",
        "set a daily budget (an agent's, or the hive's), or resume a paused one for today",
        (
            arg("--agent", help="this agent's budget (default: the hive's)"),
            arg("--usd-per-day", metavar="X", help="dollars per UTC day; none lifts it"),
            arg("--tokens-per-day", metavar="N", help="tokens per UTC day; none lifts it"),
            arg(
                "--resume",
                nargs="?",
                const="",
                metavar="NAME",
                help="resume NAME (without it: the hive) for the rest of today",
            ),
        ),
    ),
    (
        "config",
        "the daemon's settings (hive.toml): show those in force, or reload the file",
        (arg("action", choices=("show", "reload")),),
    ),
)


def build_parser() -> argparse.ArgumentParser:
    # Global flags are accepted before or after the subcommand; SUPPRESS keeps
    # a subcommand's unset copy from overwriting one given earlier.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--run-dir", default=argparse.SUPPRESS, help="env HYPERHIVE_RUN_DIR")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    parser = argparse.ArgumentParser(prog="hive", parents=[common], description="operate a hive")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text, args in COMMANDS:
        command = sub.add_parser(name, parents=[common], help=text, description=text)
        for names, options in args:
            command.add_argument(*names, **options)
    return parser


async def run(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    as_json: bool = getattr(args, "json", False)
    path = hive_config.run_dir_from(getattr(args, "run_dir", None), os.environ, os.getuid())

    def show(text: str) -> None:
        out(render.safe(text))  # the one door to the terminal

    socket = path / "host.sock"
    if args.command == "send":  # its own connections, to retry a lost answer
        result, text = await send_message(socket, args)
        show(json.dumps(result, indent=2, ensure_ascii=True) if as_json else text(result))
        return 0
    async with await Client.connect(socket) as client:
        if args.command == "tail":
            async for event in client.stream("tail"):
                # ensure_ascii: JSON leaves DEL and C1 controls raw otherwise.
                show(json.dumps(event, ensure_ascii=True) if as_json else render.event(event))
            return 0
        result, text = await call(client, args)
        show(json.dumps(result, indent=2, ensure_ascii=True) if as_json else text(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(run(args, print))
    except HiveError as exc:
        print(f"hive: {render.safe(exc.message)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
