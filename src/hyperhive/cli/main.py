"""``hive``: one subcommand per op on ``host.sock``; tables for people, ``--json`` for scripts."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from hyperhive import config as hive_config
from hyperhive.cli import render
from hyperhive.cli.commands import call, send_message
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

    def command(name: str, text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=text, description=text)

    command("status", "daemon status")
    agents = command(
        "agents", "list agents; NAME: one agent, with its tool policy; add NAME: register one"
    )
    # Words rather than subcommands: "hive agents bob" must not be an unknown subcommand.
    agents.add_argument("words", nargs="*", metavar="NAME | add NAME")
    agents.add_argument("--allow-send", help="add: comma-separated names this agent may message")
    send = command("send", "message an agent as the operator")
    send.add_argument("--to", required=True)
    send.add_argument(
        "--key", help="idempotency key: the same key again stores nothing new (default: fresh)"
    )
    send.add_argument("body", help="the message; '-' reads standard input")
    messages = command("messages", "the message log")
    messages.add_argument("--agent")
    messages.add_argument("--limit", type=int, default=50)
    messages.add_argument("--before", type=int, help="only messages older than this id")
    command("message", "one whole message").add_argument("id", type=int)
    dead = command("dead", "dead letters: messages that failed too often, waiting for you")
    dead.add_argument("agent", nargs="?", help="only those to this agent")
    dead.add_argument("--limit", type=int, default=50)
    command("retry", "put a dead letter back into its recipient's queue").add_argument(
        "id", type=int
    )
    command("drop", "mark a dead letter delivered for good").add_argument("id", type=int)
    command("tail", "stream messages and core events")
    spawn = command("spawn", "create and start an agent (no approval needed)")
    spawn.add_argument("name")
    spawn.add_argument("--config", type=Path, help="an agent.toml to seed its config repo")
    for name, text in (
        ("start", "start an agent's container"),
        ("stop", "stop an agent's container"),
        ("restart", "restart an agent's container"),
        ("kill", "stop an agent's container now"),
    ):
        command(name, text).add_argument("name")
    destroy = command("destroy", "stop and remove an agent's container for good")
    destroy.add_argument("name")
    destroy.add_argument("--yes", action="store_true", help="really destroy it")
    destroy.add_argument("--purge", action="store_true", help="also delete its state and configs")
    command("rebuild", "rebuild containers whose hyperhive rev or config is stale")
    logs = command("logs", "an agent container's recent output")
    logs.add_argument("name")
    logs.add_argument("--lines", type=int, default=200)
    work = command("work", "an agent's workspace: its branch, commits, diffstat and diff")
    work.add_argument("name")
    work.add_argument(
        "--fetch", action="store_true", help="bring its branch into the host repo as hive/NAME"
    )
    approvals = command("approvals", "pending and recent approvals")
    approvals.add_argument("--limit", type=int, default=20)
    command("approval", "one approval, with its config diff").add_argument("id", type=int)
    approve = command("approve", "approve a pending request")
    approve.add_argument("id", type=int)
    approve.add_argument(
        "--always", action="store_true", help="a tool use: also allow every identical call"
    )
    deny = command("deny", "deny a pending request")
    deny.add_argument("id", type=int)
    deny.add_argument("--reason", required=True)
    rules = command("rules", "the tool uses approved always (active and revoked)")
    rules.add_argument("agent", nargs="?", help="only this agent's")
    command("revoke", "revoke a tool rule: identical calls ask again").add_argument(
        "rule_id", type=int
    )
    questions = command("questions", "the manager's questions")
    questions.add_argument("--limit", type=int, default=20)
    answer = command("answer", "answer a question (several values for a checkbox question)")
    answer.add_argument("id", type=int)
    answer.add_argument("answer", nargs="+")
    command("dashboard-url", "the dashboard's URL with the operator token, to open it")
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
