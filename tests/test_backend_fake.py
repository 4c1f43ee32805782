"""The fake backend keeps the Protocol's promises in memory, and its levers do what they say."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hyperhive import config
from hyperhive.backends.base import Backend, BackendError, ContainerSpec, ContainerStatus
from hyperhive.backends.fake import STOPPED_CODE, Call, FakeBackend, Hold, started_lines
from hyperhive.backends.registry import BACKENDS, choose, detect

WAIT = 10.0


def spec(name: str = "bob", sha: str = "c0ffee") -> ContainerSpec:
    base = Path("/nonexistent") / name
    return ContainerSpec(
        name=name,
        role="agent",
        socket_dir=base / "run",
        state_dir=base / "state",
        claude_dir=base / "claude",
        config_dir=base / "config",
        config_sha=sha,
        command=("hive-ag3nt", "serve"),
    )


class Output:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __call__(self, name: str, line: str) -> None:
        self.lines.append((name, line))


async def waiting(backend: FakeBackend) -> tuple[asyncio.Task[int], Hold]:
    """A ``wait`` on bob, held just inside the call until released."""
    hold = backend.hold("wait")
    waiter = asyncio.create_task(backend.wait("bob"))
    await asyncio.wait_for(hold.entered.wait(), WAIT)
    return waiter, hold


async def running(backend: FakeBackend, name: str = "bob") -> Output:
    output = Output()
    await backend.create(spec(name))
    await backend.start(spec(name), output)
    return output


def test_it_is_a_backend_that_isolates_nothing_and_needs_no_uids() -> None:
    backend: Backend = FakeBackend()  # mypy checks the Protocol here
    assert (backend.name, backend.isolating, backend.agent_uids) == ("fake", False, False)


async def test_a_created_container_is_stopped_until_started() -> None:
    backend = FakeBackend()
    assert await backend.status("bob") == ContainerStatus("missing")
    await backend.create(spec())
    assert await backend.status("bob") == ContainerStatus("stopped")


async def test_creating_an_existing_container_is_refused() -> None:
    backend = FakeBackend()
    await backend.create(spec())
    with pytest.raises(BackendError, match="container h-bob already exists"):
        await backend.create(spec())


async def test_updating_or_starting_a_missing_container_is_refused() -> None:
    backend = FakeBackend()
    with pytest.raises(BackendError, match="container h-bob does not exist"):
        await backend.update(spec())
    with pytest.raises(BackendError, match="container h-bob does not exist"):
        await backend.start(spec(), Output())
    assert await backend.status("bob") == ContainerStatus("missing")


async def test_a_start_runs_the_container_without_a_pid_and_feeds_its_output() -> None:
    backend = FakeBackend()
    output = await running(backend)
    # No pid: nothing runs, so there is nothing a test could signal by mistake.
    assert await backend.status("bob") == ContainerStatus("running", None)
    assert output.lines == [("bob", line) for line in started_lines(spec())]
    assert any(line.startswith("bob ready") for _, line in output.lines)


async def test_starting_a_running_container_is_a_no_op() -> None:
    backend = FakeBackend()
    await running(backend)
    again = Output()
    await backend.start(spec(), again)
    assert again.lines == []
    assert await backend.status("bob") == ContainerStatus("running")


async def test_the_output_lines_of_a_start_can_be_chosen() -> None:
    backend = FakeBackend(lines=lambda s: [f"{s.name} at {s.config_sha}"])
    output = await running(backend)
    assert output.lines == [("bob", "bob at c0ffee")]


async def test_an_update_is_recorded_with_its_spec_and_keeps_the_container_running() -> None:
    backend = FakeBackend()
    await running(backend)
    newer = spec(sha="beef")
    await backend.update(newer)
    assert backend.calls[-1] == Call("update", "bob", newer)
    assert await backend.status("bob") == ContainerStatus("running")


async def test_wait_returns_the_code_of_a_crash() -> None:
    backend = FakeBackend()
    await running(backend)
    waiter, hold = await waiting(backend)
    hold.release()
    backend.crash("bob", code=-9)
    assert await asyncio.wait_for(waiter, WAIT) == -9
    assert await backend.status("bob") == ContainerStatus("stopped")
    assert await backend.wait("bob") == -9  # the last exit, until the next start


async def test_wait_returns_zero_after_a_stop() -> None:
    backend = FakeBackend()
    await running(backend)
    waiter, hold = await waiting(backend)
    hold.release()
    await backend.stop("bob")
    assert await asyncio.wait_for(waiter, WAIT) == STOPPED_CODE == 0
    assert await backend.status("bob") == ContainerStatus("stopped")


async def test_a_cancelled_waiter_leaves_the_container_running() -> None:
    backend = FakeBackend()
    await running(backend)
    waiter, _ = await waiting(backend)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert await backend.status("bob") == ContainerStatus("running")
    backend.crash("bob", code=3)
    assert await backend.wait("bob") == 3


async def test_waiting_on_a_container_that_never_ran_is_an_error() -> None:
    backend = FakeBackend()
    with pytest.raises(BackendError, match="container h-bob is not running"):
        await backend.wait("bob")
    await backend.create(spec())
    with pytest.raises(BackendError, match="container h-bob is not running"):
        await backend.wait("bob")


async def test_a_restart_after_a_crash_forgets_the_old_exit() -> None:
    backend = FakeBackend()
    await running(backend)
    backend.crash("bob", code=2)
    await backend.start(spec(), Output())
    waiter = asyncio.create_task(backend.wait("bob"))
    backend.crash("bob", code=5)
    assert await asyncio.wait_for(waiter, WAIT) == 5


async def test_stopping_a_stopped_or_missing_container_is_a_no_op() -> None:
    backend = FakeBackend()
    await backend.stop("ghost")
    await backend.create(spec())
    await backend.stop("bob")
    assert await backend.status("bob") == ContainerStatus("stopped")
    assert await backend.status("ghost") == ContainerStatus("missing")


async def test_destroy_stops_a_running_container_and_removes_it_for_good() -> None:
    backend = FakeBackend()
    await running(backend)
    waiter, hold = await waiting(backend)
    hold.release()
    await backend.destroy("bob")
    assert await asyncio.wait_for(waiter, WAIT) == STOPPED_CODE
    assert await backend.status("bob") == ContainerStatus("missing")
    with pytest.raises(BackendError, match="not running"):
        await backend.wait("bob")
    await backend.destroy("bob")  # a missing one: nothing to do
    await backend.create(spec())  # the name is free again


async def test_every_call_is_recorded_in_order_with_its_spec() -> None:
    backend = FakeBackend()
    await running(backend)
    await backend.status("bob")
    await backend.stop("bob")
    await backend.destroy("bob")
    assert backend.ops == [
        ("create", "bob"),
        ("start", "bob"),
        ("status", "bob"),
        ("stop", "bob"),
        ("destroy", "bob"),
    ]
    assert backend.calls[0] == Call("create", "bob", spec())
    assert backend.calls[2].spec is None


async def test_a_crash_of_a_container_that_is_not_running_is_refused() -> None:
    backend = FakeBackend()
    with pytest.raises(BackendError, match="h-bob is not running"):
        backend.crash("bob")
    await backend.create(spec())
    with pytest.raises(BackendError, match="h-bob is not running"):
        backend.crash("bob")


async def test_fail_next_fails_exactly_the_next_calls_of_that_op_and_changes_nothing() -> None:
    backend = FakeBackend()
    backend.fail_next("create", "nixos-container create h-bob failed (exit 1): no space")
    backend.fail_next("create", "second")
    with pytest.raises(BackendError, match="no space"):
        await backend.create(spec())
    with pytest.raises(BackendError, match="second"):
        await backend.create(spec())
    assert await backend.status("bob") == ContainerStatus("missing")
    await backend.create(spec())
    assert backend.ops.count(("create", "bob")) == 3


async def test_a_failing_start_leaves_the_container_stopped_without_output() -> None:
    backend = FakeBackend()
    await backend.create(spec())
    backend.fail_next("start", "cannot start h-bob: bwrap: No such file or directory")
    output = Output()
    with pytest.raises(BackendError, match="cannot start h-bob"):
        await backend.start(spec(), output)
    assert output.lines == []
    assert await backend.status("bob") == ContainerStatus("stopped")


async def test_fail_next_works_for_status_and_wait_too() -> None:
    backend = FakeBackend()
    await running(backend)
    backend.fail_next("status", "status failed")
    backend.fail_next("wait", "cannot tell")
    with pytest.raises(BackendError, match="status failed"):
        await backend.status("bob")
    with pytest.raises(BackendError, match="cannot tell"):
        await backend.wait("bob")
    assert await backend.status("bob") == ContainerStatus("running")


def test_a_lever_on_an_unknown_op_is_refused() -> None:
    backend = FakeBackend()
    with pytest.raises(BackendError, match="unknown backend op 'restart'"):
        backend.fail_next("restart", "x")  # type: ignore[arg-type]
    with pytest.raises(BackendError, match="unknown backend op 'restart'"):
        backend.hold("restart")  # type: ignore[arg-type]


async def test_a_held_start_blocks_until_released_and_a_stop_waits_behind_it() -> None:
    backend = FakeBackend()
    await backend.create(spec())
    hold = backend.hold("start")
    output = Output()
    starting = asyncio.create_task(backend.start(spec(), output))
    await asyncio.wait_for(hold.entered.wait(), WAIT)
    assert await backend.status("bob") == ContainerStatus("stopped")
    stopping = asyncio.create_task(backend.stop("bob"))
    hold.release()
    await asyncio.wait_for(starting, WAIT)
    assert output.lines != []
    await asyncio.wait_for(stopping, WAIT)
    # The stop got in only after the start it queued behind, as with a real backend's lock.
    assert backend.ops == [("create", "bob"), ("start", "bob"), ("status", "bob"), ("stop", "bob")]
    assert await backend.status("bob") == ContainerStatus("stopped")


async def test_a_held_call_can_still_fail_once_released() -> None:
    backend = FakeBackend()
    await backend.create(spec())
    hold = backend.hold("start")
    backend.fail_next("start", "timed out")
    starting = asyncio.create_task(backend.start(spec(), Output()))
    await asyncio.wait_for(hold.entered.wait(), WAIT)
    hold.release()
    with pytest.raises(BackendError, match="timed out"):
        await asyncio.wait_for(starting, WAIT)


def test_it_is_chosen_by_name_but_never_by_auto(short_dir: Path) -> None:
    assert isinstance(choose("fake", work_dir=short_dir), FakeBackend)
    assert "fake" not in BACKENDS and detect() in BACKENDS
    assert not (short_dir / "fake").exists()  # it keeps nothing on disk
    assert config.resolve(backend="fake", env={}, uid=0).backend == "fake"
    assert "fake" in config.BACKENDS and config.BACKENDS[0] == "auto"
