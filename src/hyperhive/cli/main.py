"""``hive``: one subcommand per op on ``host.sock``; tables for people, ``--json`` for scripts."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from hyperhive import config as hive_config
from hyperhive.cli import render
from hyperhive.client import Client
from hyperhive.errors import HiveError


def build_parser() -> argparse.ArgumentParser:
    # Global flags are accepted before or after the subcommand; SUPPRESS keeps
    # a subcommand's unset copy from overwriting one given earlier.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--run-dir", default=argparse.SUPPRESS, help="env HYPERHIVE_RUN_DIR")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    parser = argparse.ArgumentParser(prog="hive", parents=[common], description="operate a hive")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("status", parents=[common], help="daemon status")
    agents = sub.add_parser("agents", parents=[common], help="list or add agents")
    agents_sub = agents.add_subparsers(dest="agents_command")
    add = agents_sub.add_parser("add", parents=[common], help="register an agent (no container)")
    add.add_argument("name")
    add.add_argument("--allow-send", help="comma-separated names this agent may message")
    send = sub.add_parser("send", parents=[common], help="message an agent as the operator")
    send.add_argument("--to", required=True)
    send.add_argument("body", help="the message; '-' reads standard input")
    messages = sub.add_parser("messages", parents=[common], help="the message log")
    messages.add_argument("--agent")
    messages.add_argument("--limit", type=int, default=50)
    sub.add_parser("tail", parents=[common], help="stream messages and core events")
    return parser


async def run(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    as_json: bool = getattr(args, "json", False)
    path = hive_config.run_dir_from(getattr(args, "run_dir", None), os.environ, os.getuid())
    async with await Client.connect(path / "host.sock") as client:
        if args.command == "tail":
            async for event in client.stream("tail"):
                out(json.dumps(event) if as_json else render.event(event))
            return 0
        result, text = await _call(client, args)
        out(json.dumps(result, indent=2) if as_json else text(result))
    return 0


async def _call(client: Client, args: argparse.Namespace) -> tuple[Any, Callable[[Any], str]]:
    if args.command == "status":
        return await client.call("status"), render.status
    if args.command == "agents":
        if args.agents_command == "add":
            allow = args.allow_send.split(",") if args.allow_send is not None else None
            extra = {"allow_send": [a.strip() for a in allow if a.strip()]} if allow else {}
            added = await client.call("agent_add", name=args.name, **extra)
            return added, lambda a: f"added {a['name']} (socket {a['socket']})"
        return await client.call("agents"), render.agents
    if args.command == "send":
        body = sys.stdin.read() if args.body == "-" else args.body
        sent = await client.call("send", to=args.to, body=body)
        return sent, lambda m: f"sent #{m['id']} to {m['to']}"
    if args.command == "messages":
        extra = {"agent": args.agent} if args.agent else {}
        return await client.call("messages", limit=args.limit, **extra), render.messages
    raise HiveError(f"unknown command {args.command!r}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(run(args, print))
    except HiveError as exc:
        print(f"hive: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
