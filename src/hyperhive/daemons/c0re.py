"""``hive-c0re``: the host daemon's command line, its signal handling and its drain."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from typing import Final

from hyperhive import config as hive_config
from hyperhive.core import fd_guard
from hyperhive.core.heap import HeapSettler
from hyperhive.core.hive import Hive
from hyperhive.core.operator_token import DashboardLink, resolve_token, startup_lines
from hyperhive.core.settings_source import SettingsSource
from hyperhive.daemons.dashboard import serve_dashboard, stop_dashboard
from hyperhive.errors import ConfigError, HiveError
from hyperhive.names import OPERATOR
from hyperhive.settings import LiveSettings

log = logging.getLogger("hive-c0re")
SWITCH_INTERVAL: Final = 0.0005  # seconds; see main()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hive-c0re", description="the hyperhive host daemon")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the daemon in the foreground")
    serve.add_argument("--state-dir", help="durable state (env HYPERHIVE_STATE_DIR)")
    serve.add_argument("--run-dir", help="sockets (env HYPERHIVE_RUN_DIR)")
    serve.add_argument("--listen", help="dashboard HOST:PORT (env HYPERHIVE_LISTEN)")
    serve.add_argument(
        "--config",
        help="the settings file, reloaded on SIGHUP (env HYPERHIVE_CONFIG; default "
        "<state>/hive.toml)",
    )
    serve.add_argument(
        "--backend",
        choices=hive_config.BACKENDS,
        help="container backend (env HYPERHIVE_BACKEND; default auto; fake runs nothing, "
        "for tests)",
    )
    serve.add_argument(
        "--durability",
        choices=hive_config.DURABILITY,
        help="normal: an answered send survives any crash of the daemon; full: also a "
        "power cut, each commit fsynced first (env HYPERHIVE_DURABILITY; default normal)",
    )
    serve.add_argument(
        "--database",
        metavar="URL",
        help="a PostgreSQL URL (libpq's, e.g. postgresql://hive@/hive?host=/run/postgresql) "
        "shared by the cores of several hosts (env HYPERHIVE_DATABASE_URL; default: sqlite "
        "at <state>/hive.db)",
    )
    serve.add_argument(
        "--host-name",
        metavar="NAME",
        help="this core's name among the hosts sharing the database (env HYPERHIVE_HOST_NAME; "
        "default: the machine's hostname)",
    )
    serve.add_argument(
        "--advertise-url",
        metavar="URL",
        help="this host's front door, which other hosts' dashboards link its agents' pages "
        "to (env HYPERHIVE_ADVERTISE_URL; default: http://<listen>)",
    )
    serve.add_argument(
        "--token",
        default=os.environ.get("HYPERHIVE_OPERATOR_TOKEN"),
        help="operator token (env HYPERHIVE_OPERATOR_TOKEN; default: the one in "
        "<state>/operator-token, generated on first start)",
    )
    serve.add_argument("--no-dashboard", action="store_true", help="do not serve the dashboard")
    serve.add_argument(
        "--no-manager",
        action="store_true",
        default=os.environ.get("HYPERHIVE_NO_MANAGER") == "1",
        help="do not create or start hm1nd (env HYPERHIVE_NO_MANAGER=1)",
    )
    serve.add_argument(
        "--no-containers",
        action="store_true",
        help="broker only: no backend, agents are external participants",
    )
    serve.add_argument("--log-level", default=os.environ.get("HYPERHIVE_LOG_LEVEL", "INFO"))
    return parser


async def serve(
    config: hive_config.Config,
    *,
    manager: bool,
    containers: bool,
    token: str | None,
    dashboard: bool,
) -> int:
    # A bad hive.toml stops the start, like any other ConfigError.
    source = SettingsSource(config)
    settings = LiveSettings(source.load())
    # Before the Hive: its connection budget is derived from the limit.
    fd_guard.raise_nofile()
    fd_guard.install(asyncio.get_running_loop())
    # Before any container starts: agents' page keys are derived from it.
    operator = resolve_token(token, config.state_dir)
    backend = None
    if containers:
        from hyperhive.backends.registry import choose

        backend = choose(
            config.backend,
            work_dir=config.state_dir / "backend",
            hide=(config.state_dir, config.run_dir),
        )
    hive = Hive(config, backend, operator_token=operator.value, settings=settings)
    await hive.start(manager=manager and containers)
    heap = HeapSettler(hive.bus)
    heap.start()
    web = None
    if dashboard:
        try:
            web = await serve_dashboard(
                hive, config.listen_host, config.listen_port, operator.value
            )
        except HiveError:
            await hive.shutdown()
            raise
        hive.dashboard_link = DashboardLink(config.listen_host, web.port, operator.value)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            # A second signal means "now": skip the drain.
            log.warning("second %s: exiting without draining", signal.Signals(signum).name)
            os._exit(1)
        log.info("%s: draining", signal.Signals(signum).name)
        stop.set()

    def on_hangup() -> None:
        # The same reload as `hive config reload`; a bad file keeps the settings in force.
        try:
            changed = source.reload(hive.settings, hive.bus.publish)
            detail = {"file": str(source.path), "changed": changed}
            hive.audit.append(OPERATOR, "sighup", "config_reloaded", None, detail)
        except ConfigError as exc:
            log.error("SIGHUP: %s; the settings in force are kept", exc.message)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    print(f"hive-c0re ready: {config.host_socket}", flush=True)
    if hive.dashboard_link is not None:
        # The token only to a terminal: under systemd stdout is the journal.
        for line in startup_lines(hive.dashboard_link, operator, tty=sys.stdout.isatty()):
            print(line, flush=True)
    await stop.wait()
    await heap.close()
    if web is not None:
        await stop_dashboard(web)  # end the SSE streams before the hive goes
    await hive.shutdown()
    log.info("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Everything the core writes (hive.db, repos, records, tokens) is its own;
    # what an agent must reach is handed to it explicitly.
    os.umask(0o077)
    # The loop hands file reads (agents' /state for the dashboard) and git to threads.
    # Each time it comes back from a syscall it needs the GIL, and a thread holding it
    # keeps it for up to the switch interval (5 ms by default): with 200 agents at work
    # that wait, over every send and receive, was a large part of the loop's time.
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        config = hive_config.resolve(
            state_dir=args.state_dir,
            run_dir=args.run_dir,
            listen=args.listen,
            backend=args.backend,
            durability=args.durability,
            config_file=args.config,
            database=args.database,
            host_name=args.host_name,
            advertise_url=args.advertise_url,
        )
        return asyncio.run(
            serve(
                config,
                manager=not args.no_manager,
                containers=not args.no_containers,
                token=args.token,
                dashboard=not args.no_dashboard,
            )
        )
    except HiveError as exc:
        print(f"hive-c0re: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
