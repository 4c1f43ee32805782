"""``hive-ag3nt`` (``python -m hyperhive.daemons.ag3nt``): the harness's composition root.

``serve`` composes the turn loop (:class:`~hyperhive.agent.harness.Harness`) with the
agent's web page and runs both until SIGTERM/SIGINT; ``mcp`` serves the hive tools over
stdio for any MCP client. ``hive-m1nd`` is the same with the manager's role
(:mod:`hyperhive.daemons.m1nd`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from hyperhive.agent import autogroup, lifeline, tool_requests
from hyperhive.agent import settings as agent_settings
from hyperhive.agent.engine import DeferredEngine, Engine
from hyperhive.agent.fake_engine import ScriptedEngine
from hyperhive.agent.harness import Harness
from hyperhive.agent.history import History
from hyperhive.agent.login import Credentials
from hyperhive.agent.page_access import PageAccess, page_access
from hyperhive.agent.settings import AgentSettings, Role
from hyperhive.agent.tool_requests import Note
from hyperhive.agent.tools import HiveTools, serve_stdio
from hyperhive.errors import HiveError
from hyperhive.secret_env import is_secret_name
from hyperhive.web import WebServer, create_agent_app, is_loopback
from hyperhive.web.listen import bind_tcp
from hyperhive.web.unix_listen import UnixListener, bind_unix

log = logging.getLogger("hive-ag3nt")


def _claude_engine(settings: AgentSettings, credentials: Credentials, note: Note) -> Engine:
    def build() -> Engine:
        from hyperhive.agent.claude import ClaudeEngine
        from hyperhive.agent.permissions import core_ask

        tools = HiveTools(settings.socket, settings.role)
        # nixpkgs' claude-code in a NixOS container; else the wheel's bundled CLI.
        cli = os.environ.get("HYPERHIVE_CLAUDE_CLI")
        return ClaudeEngine(
            settings,
            tools,
            role=settings.agent_role,
            cli_path=Path(cli) if cli else None,
            # Every answer about a call that waits for the operator also goes to the
            # history, so the agent's page shows what waits.
            ask=tool_requests.noting(core_ask(settings.socket), note),
        )

    return DeferredEngine(build)


def _fake_engine(settings: AgentSettings, credentials: Credentials, note: Note) -> Engine:
    return ScriptedEngine()


# Engines by name, as backends are: "fake" echoes, for demos and benchmarks.
ENGINES: Final[dict[str, Callable[[AgentSettings, Credentials, Note], Engine]]] = {
    "claude": _claude_engine,
    "fake": _fake_engine,
}


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="a hyperhive agent harness")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("serve", "run the turn loop and web page"), ("mcp", "stdio MCP server")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--name", help="agent name (env HYPERHIVE_AGENT_NAME)")
        cmd.add_argument("--socket", help="core socket (default /run/hive/mcp.sock)")
        if name == "serve":
            cmd.add_argument("--state", help="state dir (default /state)")
            cmd.add_argument("--claude-dir", help="credentials dir (default /root/.claude)")
            cmd.add_argument("--port", type=int, help="web port (default: hashed from the name)")
            cmd.add_argument("--listen", help="web listen address (default 127.0.0.1)")
            cmd.add_argument("--engine", choices=sorted(ENGINES), help="default claude")
    return parser


@dataclass(frozen=True, slots=True)
class _Page:
    """One listener of the page: web.sock for the core's front door, or the TCP port."""

    server: WebServer
    sock: socket.socket
    unix: UnixListener | None = None


async def serve(settings: AgentSettings) -> int:
    access = page_access(settings.name, settings.state_dir, os.environ)
    if settings.api_socket is not None:
        _drop_secrets(os.environ)
    credentials = Credentials(settings.claude_dir, os.environ)
    history = History(settings.history_db, secrets=credentials.secrets)
    engine = ENGINES[settings.engine](settings, credentials, tool_requests.recorder(history))
    harness = Harness(settings, engine, history, credentials)
    behind = _behind_core(settings, harness, history)
    tcp = _on_port(settings, harness, access, history)
    pages = [page for page in (behind, tcp) if page is not None]
    turns = asyncio.create_task(harness.run())
    settling = asyncio.create_task(autogroup.settle())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    lifeline.watch(os.environ, stop.set)
    tasks: list[asyncio.Task[None]] = []
    try:
        running: set[asyncio.Task[Any]] = {asyncio.create_task(stop.wait()), turns}
        for page in pages:
            tasks.append(await _start(page, settings))
        if tcp is None:
            print(f"{settings.name} ready: no page on a port; {_where(behind)}", flush=True)
        else:
            # Relayed: the port is the core's, on the host's loopback, and this one's a path.
            port = settings.port if tcp.unix is not None else tcp.server.port
            base = f"http://{_url_host(settings.listen)}:{port}/"
            print(f"{settings.name} ready: {base}", flush=True)
            _announce_key(access, base)
        running.update(tasks)
        await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Drain: stop taking turns (an unfinished turn's message stays unacked
        # and comes back), then close the pages and their streams.
        harness.stop()
        settling.cancel()
        await turns
        for page in pages:
            page.server.should_exit = True
        for task in tasks:
            await task
        for page in pages:
            if page.unix is not None:
                page.unix.close()
        history.close()
    return 0


def _drop_secrets(env: MutableMapping[str, str]) -> None:
    """Behind the gateway nothing here needs a credential: none is passed on to the CLI or
    the tools it runs, whatever this process was started with."""
    # Ours are no secrets: the page key's digest (read first, in page_access) and kin.
    for name in [n for n in env if is_secret_name(n) and not n.startswith("HYPERHIVE_")]:
        del env[name]


async def _start(page: _Page, settings: AgentSettings) -> asyncio.Task[None]:
    """Serve ``page``; back once it listens. A server that dies starting is an error."""
    task = asyncio.create_task(page.server.serve(sockets=[page.sock]))
    ready = asyncio.create_task(page.server.ready.wait())
    await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready.cancel()
        where = page.unix.path if page.unix is not None else f"{settings.listen}:{settings.port}"
        raise HiveError(f"cannot serve the page on {where}")
    return task


def _where(behind: _Page | None) -> str:
    if behind is None or behind.unix is None:
        return "no page (see the warning)"
    return f"the page is on {behind.unix.path}"


def _behind_core(settings: AgentSettings, harness: Harness, history: History) -> _Page | None:
    """The page for the core's front door on web.sock: no gate of its own, since only the
    core and this agent can reach its socket directory."""
    try:
        unix = bind_unix(settings.web_socket)
    except OSError as exc:
        _warn(history, f"the web page cannot listen on {settings.web_socket} ({_why(exc)})")
        return None
    app = create_agent_app(harness, behind_core=True)
    return _Page(WebServer.for_app(app, "localhost", 0), unix.sock, unix)


def _on_port(
    settings: AgentSettings, harness: Harness, access: PageAccess, history: History
) -> _Page | None:
    """The page on its own port, behind its page key, or None: a port someone else holds
    (another agent may squat it) costs that page, never the agent, which goes on answering
    its messages and serving web.sock."""
    if settings.port is None:
        return None
    if settings.page_socket is not None:
        return _relayed(settings, harness, access, history, settings.page_socket)
    try:
        sock = bind_tcp(settings.listen, settings.port)
    except OSError as exc:
        where = f"{settings.listen}:{settings.port}"
        _warn(history, f"the web page cannot listen on {where} ({_why(exc)}); running without it")
        return None
    app = create_agent_app(harness, check=access.check, loopback=is_loopback(settings.listen))
    return _Page(WebServer.for_app(app, settings.listen, settings.port), sock)


def _relayed(
    settings: AgentSettings, harness: Harness, access: PageAccess, history: History, path: Path
) -> _Page | None:
    """The page as on its port, key and all, on ``path``: the core listens on the port
    on the host's loopback (this container's is its own) and relays it here."""
    try:
        unix = bind_unix(path)
    except OSError as exc:
        _warn(history, f"the web page cannot listen on {path} ({_why(exc)}); running without it")
        return None
    app = create_agent_app(harness, check=access.check, loopback=True)
    return _Page(WebServer.for_app(app, "127.0.0.1", settings.port or 0), unix.sock, unix)


def _why(exc: OSError) -> str:
    return str(exc.strerror or exc)


def _warn(history: History, text: str) -> None:
    log.warning("%s", text)
    history.publish("notice", {"level": "warning", "text": text})


def _announce_key(access: PageAccess, base: str) -> None:
    """Tell a person where a key this harness made is; the key itself only to a terminal."""
    if access.key is None:
        return
    if sys.stderr.isatty():
        print(f"open the page: {base}?token={access.key}", file=sys.stderr, flush=True)
    else:
        log.info("the page key is in %s: open %s?token=<that key>", access.key_file, base)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def run(role: Role, argv: list[str] | None) -> int:
    prog = "hive-m1nd" if role == "manager" else "hive-ag3nt"
    args = build_parser(prog).parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("HYPERHIVE_LOG_LEVEL", "INFO").upper(),
        format=f"%(asctime)s %(levelname)s {prog}: %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.command == "mcp":
            settings = agent_settings.resolve(name=args.name, role=role, socket=args.socket)
            asyncio.run(serve_stdio(HiveTools(settings.socket, role)))
            return 0
        settings = agent_settings.resolve(
            name=args.name,
            role=role,
            socket=args.socket,
            state=args.state,
            claude_dir=args.claude_dir,
            listen=args.listen,
            port=args.port,
            engine=args.engine,
        )
        return asyncio.run(serve(settings))
    except HiveError as exc:
        print(f"{prog}: {exc.message}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    return run("agent", argv)


if __name__ == "__main__":
    sys.exit(main())
