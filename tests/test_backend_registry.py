"""Choosing a backend by name, and what ``auto`` picks on this host."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from hyperhive.backends.base import BackendError
from hyperhive.backends.bwrap import BwrapBackend
from hyperhive.backends.nixos import NixosBackend
from hyperhive.backends.process import NO_ISOLATION_WARNING, ProcessBackend
from hyperhive.backends.registry import BACKENDS, bwrap_works, choose


def test_auto_picks_bwrap_on_a_non_nixos_host_with_a_working_bwrap(short_dir: Path) -> None:
    assert not Path("/etc/NIXOS").exists()
    assert bwrap_works()
    backend = choose("auto", work_dir=short_dir, hide=(short_dir,))
    assert isinstance(backend, BwrapBackend)
    assert backend.name == "bwrap"


def test_auto_falls_back_to_process_with_a_loud_warning_without_bwrap(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PATH", str(short_dir))  # nothing to find there
    assert not bwrap_works()
    with caplog.at_level(logging.WARNING):
        backend = choose("auto", work_dir=short_dir)
    assert isinstance(backend, ProcessBackend) and backend.name == "process"
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert NO_ISOLATION_WARNING in messages
    assert any("using process" in m for m in messages)


def test_a_bwrap_that_cannot_sandbox_is_not_chosen(short_dir: Path) -> None:
    broken = short_dir / "bwrap"
    broken.write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n"
    )
    broken.chmod(0o755)
    assert not bwrap_works(str(broken))


def test_each_name_gives_its_backend_with_its_own_work_dir(short_dir: Path) -> None:
    assert set(BACKENDS) == {"nixos", "bwrap", "process"}
    assert isinstance(choose("nixos", work_dir=short_dir), NixosBackend)
    assert isinstance(choose("bwrap", work_dir=short_dir), BwrapBackend)
    assert isinstance(choose("process", work_dir=short_dir), ProcessBackend)


def test_an_unknown_backend_name_is_a_clear_error(short_dir: Path) -> None:
    with pytest.raises(BackendError, match="unknown backend 'docker': choose one of auto, "):
        choose("docker", work_dir=short_dir)


def test_choosing_process_by_name_warns_loudly(
    short_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        choose("process", work_dir=short_dir)
    assert [r.levelno for r in caplog.records if "NO ISOLATION" in r.getMessage()] == [
        logging.WARNING
    ]
