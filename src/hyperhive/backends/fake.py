"""A fake backend for tests: in-memory containers, no processes, same seam.

Like httpx's ``MockTransport`` or :class:`hyperhive.agent.fake_engine.ScriptedEngine`:
the lifecycle runs against it unchanged, and a test asserts on what was asked
(:attr:`FakeBackend.calls`) and pulls levers the real world would pull:
:meth:`~FakeBackend.crash` (the container's main process dies on its own),
:meth:`~FakeBackend.fail_next` (the next call of an op fails as a real tool
would) and :meth:`~FakeBackend.hold` (the next call of an op blocks until the
test lets it go: a slow ``start``, a stuck ``stop``).

It refuses what the process and bwrap backends refuse, with their messages:
creating an existing container, updating or starting a missing one, waiting
on one that never ran. Nothing runs, so no agent ever answers a message and
``status`` has no pid to give (nothing a test could signal by mistake).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, get_args

from hyperhive.backends.base import BackendError, ContainerSpec, ContainerStatus, OutputSink

log = logging.getLogger(__name__)

Op = Literal["create", "update", "start", "wait", "stop", "destroy", "status"]
OPS: Final[tuple[Op, ...]] = get_args(Op)
# What ``wait`` answers after ``stop``: a harness that ends cleanly on SIGTERM
# (the nixos backend reports the same for a container it stopped).
STOPPED_CODE: Final = 0
NOTHING_RUNS: Final = "fake backend: agents' containers run nothing and never answer"

Lines = Callable[[ContainerSpec], Sequence[str]]


def started_lines(spec: ContainerSpec) -> Sequence[str]:
    """The output of a start: the second line is shaped like the harness's own
    first line, so whoever reads an agent's log sees what a real start shows."""
    return (
        f"{spec.container}: started by the fake backend (nothing runs)",
        f"{spec.name} ready: no harness (fake backend)",
    )


@dataclass(frozen=True, slots=True)
class Call:
    """One call of the Protocol, as the backend received it."""

    op: Op
    name: str
    spec: ContainerSpec | None = None


@dataclass(eq=False)
class Hold:
    """The next call of an op blocks here: ``entered`` is set once it does,
    and it goes on (to succeed, or fail as :meth:`FakeBackend.fail_next` said)
    after :meth:`release`."""

    entered: asyncio.Event = field(default_factory=asyncio.Event)
    _released: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        self._released.set()

    async def _pass(self) -> None:
        self.entered.set()
        await self._released.wait()


@dataclass(eq=False)
class _Container:
    spec: ContainerSpec
    # Since its last start: pending while it runs, then its exit code.
    exited: asyncio.Future[int] | None = None

    @property
    def running(self) -> bool:
        return self.exited is not None and not self.exited.done()


class FakeBackend:
    name = "fake"
    agent_uids = False
    isolating = False
    own_network = False

    def __init__(self, *, lines: Lines = started_lines) -> None:
        self._lines = lines
        self._containers: dict[str, _Container] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._failures: dict[Op, deque[str]] = {op: deque() for op in OPS}
        self._holds: dict[Op, deque[Hold]] = {op: deque() for op in OPS}
        self.calls: list[Call] = []

    @property
    def ops(self) -> list[tuple[Op, str]]:
        """Every call so far as ``(op, name)``, oldest first."""
        return [(call.op, call.name) for call in self.calls]

    # -- levers ---------------------------------------------------------------

    def crash(self, name: str, code: int = 1) -> None:
        """The running container's main process ends on its own with ``code``
        (negative: killed by that signal); its ``wait`` returns ``code``."""
        container = self._containers.get(name)
        if container is None or not container.running:
            raise BackendError(f"container h-{name} is not running")
        self._exit(container, code)

    def fail_next(self, op: Op, message: str) -> None:
        """The next call of ``op`` (on any container) raises ``BackendError(message)``
        and changes nothing; several queue up, one per call."""
        self._failures[_known(op)].append(message)

    def hold(self, op: Op) -> Hold:
        """The next call of ``op`` blocks until the returned hold is released."""
        hold = Hold()
        self._holds[_known(op)].append(hold)
        return hold

    # -- the Backend protocol -------------------------------------------------

    async def create(self, spec: ContainerSpec) -> None:
        async with self._lock(spec.name):
            await self._enter("create", spec.name, spec)
            if spec.name in self._containers:
                raise BackendError(f"container {spec.container} already exists")
            self._containers[spec.name] = _Container(spec)

    async def update(self, spec: ContainerSpec) -> None:
        # Recorded only, as in the process backend: a running one keeps its old spec.
        async with self._lock(spec.name):
            await self._enter("update", spec.name, spec)
            self._require(spec.name).spec = spec

    async def start(self, spec: ContainerSpec, output: OutputSink) -> None:
        async with self._lock(spec.name):
            await self._enter("start", spec.name, spec)
            container = self._require(spec.name)
            if container.running:
                return
            container.spec = spec
            container.exited = asyncio.get_running_loop().create_future()
        for line in self._lines(spec):
            output(spec.name, line)

    async def wait(self, name: str) -> int:
        # The run it waits for is the one there when it is called (a held wait
        # still gets the exit of a container destroyed meanwhile).
        container = self._containers.get(name)
        exited = container.exited if container is not None else None
        await self._enter("wait", name)
        if exited is None:
            raise BackendError(f"container h-{name} is not running")
        # Shielded: a cancelled watcher must not end the container.
        return await asyncio.shield(exited)

    async def stop(self, name: str) -> None:
        async with self._lock(name):
            await self._enter("stop", name)
            container = self._containers.get(name)
            if container is not None and container.running:
                self._exit(container, STOPPED_CODE)

    async def destroy(self, name: str) -> None:
        async with self._lock(name):
            await self._enter("destroy", name)
            container = self._containers.pop(name, None)
            if container is not None and container.running:
                self._exit(container, STOPPED_CODE)

    async def status(self, name: str) -> ContainerStatus:
        await self._enter("status", name)
        container = self._containers.get(name)
        if container is None:
            return ContainerStatus("missing")
        return ContainerStatus("running" if container.running else "stopped")

    # -- internals ------------------------------------------------------------

    async def _enter(self, op: Op, name: str, spec: ContainerSpec | None = None) -> None:
        self.calls.append(Call(op, name, spec))
        holds, failures = self._holds[op], self._failures[op]
        if holds:
            await holds.popleft()._pass()
        if failures:
            raise BackendError(failures.popleft())

    def _require(self, name: str) -> _Container:
        container = self._containers.get(name)
        if container is None:
            raise BackendError(f"container h-{name} does not exist")
        return container

    def _exit(self, container: _Container, code: int) -> None:
        if container.exited is not None and not container.exited.done():
            container.exited.set_result(code)
            log.info("%s exited with %d", container.spec.container, code)

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())


def _known(op: Op) -> Op:
    if op not in OPS:
        raise BackendError(f"unknown backend op {op!r}: one of {', '.join(OPS)}")
    return op
