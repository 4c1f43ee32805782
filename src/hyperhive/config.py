"""The daemon's configuration, resolved once from flags and ``HYPERHIVE_*`` env vars.

The resolved :class:`Config` is passed into everything that needs it; nothing
reads the environment later, so a test can run any number of daemons side by
side with different directories.
"""

from __future__ import annotations

import math
import os
import re
import socket
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from hyperhive.errors import ConfigError

# "fake" runs nothing (tests, demos); "auto" never chooses it (backends/registry.py).
BACKENDS: Final = ("auto", "nixos", "bwrap", "process", "fake")
# sqlite's synchronous setting (README, Durability): "normal" survives any process crash,
# "full" also a power cut, each commit fsynced before its answer.
DURABILITY: Final = ("normal", "full")
DEFAULT_LISTEN: Final = "127.0.0.1:7000"
DEFAULT_MAX_BODY: Final = 256 * 1024
DEFAULT_MAX_LINE: Final = 1024 * 1024
DEFAULT_LEASE_SECONDS: Final = 900.0
# Per-agent send limits (core/limits.py): far above what a working agent sends, low enough
# that a flooding one cannot fill the disk or the dashboard.
DEFAULT_SEND_RATE: Final = 20
DEFAULT_SEND_BURST: Final = 100
DEFAULT_SEND_BYTES_RATE: Final = 2 * 1024 * 1024
DEFAULT_SEND_BYTES_BURST: Final = 16 * 1024 * 1024
DEFAULT_UNDELIVERED_QUOTA: Final = 64 * 1024 * 1024
# Socket connection limits (core/server.py). The hive-wide cap defaults to what
# RLIMIT_NOFILE leaves after headroom (core/connections.py).
DEFAULT_AGENT_SOCKET_CONNECTIONS: Final = 32
DEFAULT_HOST_SOCKET_CONNECTIONS: Final = 64
DEFAULT_LINE_TIMEOUT: Final = 10.0
DEFAULT_IDLE_TIMEOUT: Final = 300.0
# How long a send's key names its message (core/send_keys.py): far longer than any retry.
DEFAULT_SEND_KEY_WINDOW: Final = 24 * 3600
# Tries a message gets when its turn fails for its own sake, before it is a dead letter
# (core/dead_letter.py); failures that are not the message's fault count nothing.
DEFAULT_MAX_ATTEMPTS: Final = 3
# Agents' containers run at this niceness (0-19, 0: as the core). Measured at 200 agents
# taking a turn at once: the core's dashboard answers p99 217 ms at 0, 117 ms at 19.
DEFAULT_AGENT_NICE: Final = 10
# The model gateway (core/gateway/): where it forwards, and how much it lets through.
DEFAULT_UPSTREAM_URL: Final = "https://api.anthropic.com"
DEFAULT_GATEWAY_CONCURRENCY: Final = 16
DEFAULT_GATEWAY_PER_AGENT: Final = 4
DEFAULT_GATEWAY_MAX_BODY: Final = 32 * 1024 * 1024
DEFAULT_GATEWAY_RETRY_FOR: Final = 600.0
DEFAULT_GATEWAY_CONNECTIONS: Final = 16
# The operator's settings file (settings_file.py), and the env vars that pin one of its
# values (core/settings_source.py): set, they win over the file.
SETTINGS_FILE: Final = "hive.toml"
SETTINGS_ENV: Final = (
    "HYPERHIVE_BUDGET_USD_PER_DAY",
    "HYPERHIVE_BUDGET_TOKENS_PER_DAY",
    "HYPERHIVE_GATEWAY_CONCURRENCY",
    "HYPERHIVE_GATEWAY_PER_AGENT",
)


@dataclass(frozen=True, slots=True)
class Config:
    state_dir: Path
    run_dir: Path
    listen_host: str = "127.0.0.1"
    listen_port: int = 7000
    backend: str = "auto"
    max_body: int = DEFAULT_MAX_BODY
    max_line: int = DEFAULT_MAX_LINE
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    send_rate: float = DEFAULT_SEND_RATE
    send_burst: int = DEFAULT_SEND_BURST
    send_bytes_rate: float = DEFAULT_SEND_BYTES_RATE
    send_bytes_burst: int = DEFAULT_SEND_BYTES_BURST
    undelivered_quota: int = DEFAULT_UNDELIVERED_QUOTA
    max_connections: int | None = None  # None: derived from RLIMIT_NOFILE at start
    agent_socket_connections: int = DEFAULT_AGENT_SOCKET_CONNECTIONS
    host_socket_connections: int = DEFAULT_HOST_SOCKET_CONNECTIONS
    line_timeout: float = DEFAULT_LINE_TIMEOUT
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    send_key_window: float = DEFAULT_SEND_KEY_WINDOW
    durability: str = "normal"
    # A PostgreSQL URL (libpq's): the store shared by several hosts' cores; None: sqlite.
    database_url: str | None = None
    # This core's name among the hosts sharing the store, and the front door it advertises
    # (None: its dashboard's http://listen address).
    host_name: str = "local"
    advertise_url: str | None = None
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    agent_nice: int = DEFAULT_AGENT_NICE
    # None: the ANTHROPIC_BASE_URL of the env the hive is given, else the API (upstream_url()).
    upstream_url: str | None = None
    gateway_concurrency: int = DEFAULT_GATEWAY_CONCURRENCY
    gateway_per_agent: int | None = DEFAULT_GATEWAY_PER_AGENT
    gateway_max_body: int = DEFAULT_GATEWAY_MAX_BODY
    gateway_retry_for: float = DEFAULT_GATEWAY_RETRY_FOR
    gateway_connections: int = DEFAULT_GATEWAY_CONNECTIONS  # per api.sock
    # The hive-wide daily budget (core/gateway/meter.py); None: no limit of that kind.
    hive_usd_per_day: float | None = None
    hive_tokens_per_day: int | None = None
    # hive.toml (None: <state>/hive.toml), and which of SETTINGS_ENV were set.
    config_file: Path | None = None
    env_pinned: frozenset[str] = frozenset()

    @property
    def db_path(self) -> Path:
        return self.state_dir / "hive.db"

    @property
    def store(self) -> str | Path:
        """What core/db opens: the shared PostgreSQL database, else ``<state>/hive.db``."""
        return self.database_url if self.database_url is not None else self.db_path

    @property
    def front_door(self) -> str:
        """The URL other hosts' dashboards link this host's agent pages to."""
        if self.advertise_url is not None:
            return self.advertise_url
        host = f"[{self.listen_host}]" if ":" in self.listen_host else self.listen_host
        return f"http://{host}:{self.listen_port}"

    @property
    def settings_file(self) -> Path:
        return self.config_file if self.config_file is not None else self.state_dir / SETTINGS_FILE

    @property
    def host_socket(self) -> Path:
        return self.run_dir / "host.sock"

    def agent_socket(self, name: str, *, manager: bool) -> Path:
        if manager:
            return self.run_dir / "manager" / "mcp.sock"
        return self.run_dir / "agents" / name / "mcp.sock"


_HOST_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,62}")


def validate_host_name(value: object) -> str:
    """A host's name: what a machine's hostname may be (letters, digits, '.', '-')."""
    if not isinstance(value, str) or _HOST_NAME.fullmatch(value) is None:
        raise ConfigError(
            f"invalid host name {value!r}: 1-63 letters, digits, '.' or '-', "
            "starting with a letter or digit"
        )
    return value


def _advertise_url(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
        raise ConfigError(f"invalid advertised URL {value!r}: expected http(s)://host[:port]")
    return value


def _database_url(value: str | None) -> str | None:
    if value is None:
        return None
    if not value.startswith(("postgresql://", "postgres://")):
        # Never echo the value: a URL may carry a password.
        raise ConfigError(
            "the database must be a PostgreSQL URL (postgresql://…); leave it unset for sqlite"
        )
    return value


def default_state_dir(env: Mapping[str, str], uid: int) -> Path:
    if uid == 0:
        return Path("/var/lib/hyperhive")
    if env.get("XDG_STATE_HOME"):
        return Path(env["XDG_STATE_HOME"]) / "hyperhive"
    return Path(env.get("HOME", "~")).expanduser() / ".local/state/hyperhive"


def default_run_dir(env: Mapping[str, str], uid: int, state_dir: Path) -> Path:
    if uid == 0:
        return Path("/run/hyperhive")
    runtime = env.get("XDG_RUNTIME_DIR")
    return Path(runtime) / "hyperhive" if runtime else state_dir / "run"


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"invalid listen address {value!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


def run_dir_from(flag: str | None, env: Mapping[str, str], uid: int) -> Path:
    """The run dir as a client (the ``hive`` CLI) finds it: flag, env, default."""
    if flag:
        return Path(flag)
    if env.get("HYPERHIVE_RUN_DIR"):
        return Path(env["HYPERHIVE_RUN_DIR"])
    state = Path(env["HYPERHIVE_STATE_DIR"]) if env.get("HYPERHIVE_STATE_DIR") else None
    return default_run_dir(env, uid, state or default_state_dir(env, uid))


def resolve(
    *,
    state_dir: str | None = None,
    run_dir: str | None = None,
    listen: str | None = None,
    backend: str | None = None,
    durability: str | None = None,
    env: Mapping[str, str] | None = None,
    uid: int | None = None,
    config_file: str | None = None,
    database: str | None = None,
    host_name: str | None = None,
    advertise_url: str | None = None,
) -> Config:
    """Flags win over env vars, env vars over the defaults of DESIGN §2."""
    env = os.environ if env is None else env
    uid = os.getuid() if uid is None else uid
    state = Path(state_dir or env.get("HYPERHIVE_STATE_DIR") or default_state_dir(env, uid))
    run = Path(run_dir or env.get("HYPERHIVE_RUN_DIR") or default_run_dir(env, uid, state))
    host, port = parse_listen(listen or env.get("HYPERHIVE_LISTEN") or DEFAULT_LISTEN)
    chosen = backend or env.get("HYPERHIVE_BACKEND") or "auto"
    if chosen not in BACKENDS:
        raise ConfigError(f"unknown backend {chosen!r}: choose one of {', '.join(BACKENDS)}")
    durable = durability or env.get("HYPERHIVE_DURABILITY") or "normal"
    if durable not in DURABILITY:
        raise ConfigError(f"unknown durability {durable!r}: choose one of {', '.join(DURABILITY)}")
    database_url = _database_url(database or env.get("HYPERHIVE_DATABASE_URL") or None)
    named = validate_host_name(
        host_name or env.get("HYPERHIVE_HOST_NAME") or socket.gethostname() or "local"
    )
    advertised = _advertise_url(advertise_url or env.get("HYPERHIVE_ADVERTISE_URL") or None)
    max_body = _int_env(env, "HYPERHIVE_MAX_BODY", DEFAULT_MAX_BODY)
    lease = float(_int_env(env, "HYPERHIVE_LEASE_SECONDS", int(DEFAULT_LEASE_SECONDS)))
    settings_file = config_file or env.get("HYPERHIVE_CONFIG")
    return Config(
        state_dir=state.absolute(),
        run_dir=run.absolute(),
        listen_host=host,
        listen_port=port,
        backend=chosen,
        max_body=max_body,
        lease_seconds=lease,
        send_rate=_int_env(env, "HYPERHIVE_SEND_RATE", DEFAULT_SEND_RATE),
        send_burst=_int_env(env, "HYPERHIVE_SEND_BURST", DEFAULT_SEND_BURST),
        send_bytes_rate=_int_env(env, "HYPERHIVE_SEND_BYTES_RATE", DEFAULT_SEND_BYTES_RATE),
        send_bytes_burst=_int_env(env, "HYPERHIVE_SEND_BYTES_BURST", DEFAULT_SEND_BYTES_BURST),
        undelivered_quota=_int_env(env, "HYPERHIVE_UNDELIVERED_QUOTA", DEFAULT_UNDELIVERED_QUOTA),
        max_connections=_int_env(env, "HYPERHIVE_MAX_CONNECTIONS", 0) or None,
        agent_socket_connections=_int_env(
            env, "HYPERHIVE_AGENT_SOCKET_CONNECTIONS", DEFAULT_AGENT_SOCKET_CONNECTIONS
        ),
        host_socket_connections=_int_env(
            env, "HYPERHIVE_HOST_SOCKET_CONNECTIONS", DEFAULT_HOST_SOCKET_CONNECTIONS
        ),
        line_timeout=_int_env(env, "HYPERHIVE_LINE_TIMEOUT", int(DEFAULT_LINE_TIMEOUT)),
        idle_timeout=_int_env(env, "HYPERHIVE_IDLE_TIMEOUT", int(DEFAULT_IDLE_TIMEOUT)),
        send_key_window=_int_env(env, "HYPERHIVE_SEND_KEY_WINDOW", DEFAULT_SEND_KEY_WINDOW),
        durability=durable,
        database_url=database_url,
        host_name=named,
        advertise_url=advertised,
        max_attempts=_int_env(env, "HYPERHIVE_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS),
        agent_nice=_nice_env(env),
        upstream_url=_upstream_env(env),
        gateway_concurrency=_int_env(
            env, "HYPERHIVE_GATEWAY_CONCURRENCY", DEFAULT_GATEWAY_CONCURRENCY
        ),
        gateway_per_agent=_int_env(env, "HYPERHIVE_GATEWAY_PER_AGENT", DEFAULT_GATEWAY_PER_AGENT),
        gateway_max_body=_int_env(env, "HYPERHIVE_GATEWAY_MAX_BODY", DEFAULT_GATEWAY_MAX_BODY),
        gateway_retry_for=float(
            _int_env(env, "HYPERHIVE_GATEWAY_RETRY_FOR", int(DEFAULT_GATEWAY_RETRY_FOR))
        ),
        gateway_connections=_int_env(
            env, "HYPERHIVE_GATEWAY_CONNECTIONS", DEFAULT_GATEWAY_CONNECTIONS
        ),
        hive_usd_per_day=_float_env(env, "HYPERHIVE_BUDGET_USD_PER_DAY"),
        hive_tokens_per_day=_int_env(env, "HYPERHIVE_BUDGET_TOKENS_PER_DAY", 0) or None,
        config_file=Path(settings_file).absolute() if settings_file else None,
        env_pinned=frozenset(key for key in SETTINGS_ENV if env.get(key)),
    )


def _float_env(env: Mapping[str, str], key: str) -> float | None:
    """A positive finite number, or None when unset."""
    raw = env.get(key)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{key}={raw!r}: expected a positive number")
    return value


def check_upstream_url(value: str, source: str) -> str:
    """``value`` if it is ``http(s)://host[:port][/path]`` (no query, no credentials)."""
    parsed = urllib.parse.urlsplit(value)
    try:
        port_ok = parsed.port is None or 0 < parsed.port < 65536
    except ValueError:
        port_ok = False
    if (
        parsed.scheme not in ("http", "https")
        or not parsed.hostname
        or "@" in parsed.netloc
        or parsed.query
        or parsed.fragment
        or not port_ok
    ):
        raise ConfigError(f"{source}={value!r}: expected http(s)://host[:port][/path]")
    return value.rstrip("/")


def _upstream_env(env: Mapping[str, str]) -> str | None:
    for key in ("HYPERHIVE_UPSTREAM_URL", "ANTHROPIC_BASE_URL"):
        if env.get(key):
            return check_upstream_url(env[key], key)
    return None


def upstream_url(config: Config, env: Mapping[str, str]) -> str:
    """Where the gateway forwards: the config's, else ``env``'s ANTHROPIC_BASE_URL (the
    env a hive is given; tests give it FakeAnthropic's), else the API itself."""
    if config.upstream_url is not None:
        return check_upstream_url(config.upstream_url, "upstream_url")
    if env.get("ANTHROPIC_BASE_URL"):
        return check_upstream_url(env["ANTHROPIC_BASE_URL"], "ANTHROPIC_BASE_URL")
    return DEFAULT_UPSTREAM_URL


def _int_env(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) <= 0:
        raise ConfigError(f"{key}={raw!r}: expected a positive integer")
    return int(raw)


def _nice_env(env: Mapping[str, str]) -> int:
    raw = env.get("HYPERHIVE_AGENT_NICE")
    if raw is None or raw == "":
        return DEFAULT_AGENT_NICE
    if not raw.isdigit() or int(raw) > 19:
        raise ConfigError(f"HYPERHIVE_AGENT_NICE={raw!r}: expected a niceness from 0 to 19")
    return int(raw)
