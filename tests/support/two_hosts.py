"""Cores of several hosts on one machine: each its own state and run dirs, all on one
PostgreSQL database (tests/support/postgres.py gives a fresh one)."""

from __future__ import annotations

from pathlib import Path

from conftest import Daemon, start_daemon


def start_host(base: Path, name: str, url: str, *extra: str) -> Daemon:
    """A real ``hive-c0re`` for host ``name`` on database ``url``; without a ``--backend``
    in ``extra`` it runs no containers."""
    backend = () if "--backend" in extra else ("--no-containers",)
    return start_daemon(
        base / name / "state", base / name / "run", *backend,
        "--database", url, "--host-name", name, *extra,
    )  # fmt: skip


def socket_of(host: Daemon, agent: str) -> Path:
    """Where ``agent``'s core serves it, on ``host``."""
    return host.run_dir / "agents" / agent / "mcp.sock"
