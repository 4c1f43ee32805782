"""One connection's request lines, read ahead of their answers within bounds.

A task per connection reads lines into a queue of one, so a client can make
the core hold no more than the line being answered, one waiting and one being
read. Reading on while a request is answered is what lets the core notice a
hangup at once: the client closing its end shows up as EOF here, and the
request in flight (a long-poll, say) is cancelled instead of holding its
descriptor for up to an hour. Where EOF cannot be seen — the reader is held
up by a full queue, or the client half-closed and still waits for answers —
the reader asks the kernel about the peer once a second instead.

Time limits — a line must end within ``line_timeout`` of its first byte, a
connection with nothing asked of it closes after ``idle_timeout`` — are kept by
one watchdog timer per connection that looks at timestamps when it fires, not
by a timer armed and cancelled around every request: on the hot path a request
costs two assignments, not two entries in the loop's timer heap.
"""

from __future__ import annotations

import asyncio
import select
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from hyperhive.errors import HiveError, TimedOut, TooLarge

HANGUP_PROBE_SECONDS: Final = 1.0
_GONE: Final = select.POLLHUP | select.POLLERR | select.POLLNVAL


@dataclass(frozen=True, slots=True)
class End:
    """The last item of a connection's input.

    ``error`` set: the client broke the protocol (answer it, then close);
    ``hung_up``: the client is gone, nothing more can be answered; neither:
    the client finished sending (EOF) and waits for what is still owed.
    """

    error: HiveError | None = None
    hung_up: bool = False


HUNG_UP: Final = End(hung_up=True)
Item = bytes | End


class LineReader:
    """Lines of one connection, each a complete request line (blank ones dropped).

    ``may_idle_out`` is asked before an idle connection is closed: a
    connection whose client is in the middle of something (holding a lease,
    say) is not idle, however quiet it is.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        fileno: Callable[[], int],
        *,
        max_line: int,
        line_timeout: float,
        idle_timeout: float | None = None,
        may_idle_out: Callable[[], bool] = lambda: True,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._reader = reader
        self._fileno = fileno
        self._max_line = max_line
        self._line_timeout = line_timeout
        self._idle_timeout = idle_timeout
        self._may_idle_out = may_idle_out
        self._queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=1)
        self.hangup: asyncio.Future[None] = self._loop.create_future()
        self._line_began: float | None = None  # when the line being read had its first byte
        self._idle_since: float | None = None  # when the server began waiting for a line
        self._end: End | None = None  # an end the watchdog decided, after what is queued
        self._awaiting = False  # waiting for the client with nothing of it unread
        self._task: asyncio.Task[None] | None = asyncio.create_task(self._run())
        limits = [t for t in (line_timeout, idle_timeout) if t is not None]
        self._tick = max(0.05, min(limits) / 4)
        self._watchdog: asyncio.TimerHandle | None = self._loop.call_later(self._tick, self._check)

    @property
    def receiving(self) -> bool:
        """A line has begun and not yet ended."""
        return self._line_began is not None

    async def next(self) -> Item:
        """The next line, or the :class:`End` (repeated once reached)."""
        if self._end is not None and self._queue.empty():
            return self._end
        self._idle_since = self._loop.time()
        try:
            item = await self._queue.get()
        finally:
            self._idle_since = None
        if isinstance(item, End):
            self._queue.put_nowait(item)  # the reader has stopped: the slot is free
        return item

    @property
    def quiet(self) -> bool:
        """Everything the client sent has been taken: closing now drops no request."""
        return self._awaiting and self._queue.empty()

    def stop(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._task is not None:
            self._task.cancel()
            # The cancelled task keeps its traceback, whose frames hold this reader:
            # letting go of the task breaks the cycle, so the client's buffered bytes
            # are freed at once rather than whenever the cyclic GC next runs.
            self._task = None

    def _check(self) -> None:
        now = self._loop.time()
        end = None
        if self._line_began is not None and now - self._line_began >= self._line_timeout:
            limit = self._line_timeout
            end = End(TimedOut(f"a line must end within {limit:g} s of its first byte"))
        elif (
            self._idle_timeout is not None
            and self._idle_since is not None
            and self._line_began is None
            and now - self._idle_since >= self._idle_timeout
            and self._may_idle_out()
        ):
            idle = self._idle_timeout
            end = End(TimedOut(f"nothing asked for {idle:g} s; closing this connection"))
        if end is None:
            self._watchdog = self._loop.call_later(self._tick, self._check)
            return
        self._watchdog = None
        if self._task is not None:
            self._task.cancel()  # nothing more is read: what the client sends now is moot
            self._task = None
        if self._queue.empty():
            self._queue.put_nowait(end)
        else:
            self._end = end  # after the line already waiting to be answered

    async def _run(self) -> None:
        try:
            end = await self._read_lines()
        except OSError:  # ECONNRESET and the like: the client is gone
            end = None
        if end is None or self._peer_gone() or not await self._offer(end):
            self._hang_up()
            return
        # No event exists for "the peer closed after a half-close": asyncio stopped
        # reading at EOF, and the kernel tells only when asked.
        while not self._peer_gone():  # noqa: ASYNC110
            await asyncio.sleep(HANGUP_PROBE_SECONDS)
        self._hang_up()

    async def _read_lines(self) -> End | None:
        """Queue lines until the input ends; None when the client hung up meanwhile."""
        while True:
            line = await self._read_line()
            if isinstance(line, End):
                return line
            if line.strip() and not await self._offer(line):
                return None
            if not line.endswith(b"\n"):
                return End()  # EOF after a last, unterminated line

    async def _read_line(self) -> bytes | End:
        self._awaiting = True  # only seen by others if read() finds nothing and waits
        try:
            head = await self._reader.read(1)
        finally:
            self._awaiting = False
        if not head:
            return End()
        if head == b"\n":
            return head
        self._line_began = self._loop.time()
        try:
            line = head + await self._reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            line = head + exc.partial
        except asyncio.LimitOverrunError:
            return End(TooLarge(f"line exceeds {self._max_line} bytes"))
        finally:
            self._line_began = None
        if len(line) - line.endswith(b"\n") > self._max_line:
            return End(TooLarge(f"line exceeds {self._max_line} bytes"))
        return line

    async def _offer(self, item: Item) -> bool:
        """Queue ``item``; False if the client hung up while the queue stayed full."""
        if self._queue.empty():  # the common case: the last answer went out already
            self._queue.put_nowait(item)
            return True
        while True:
            try:
                async with asyncio.timeout(HANGUP_PROBE_SECONDS):
                    await self._queue.put(item)
                return True
            except TimeoutError:
                if self._peer_gone():
                    return False

    def _hang_up(self) -> None:
        if not self.hangup.done():
            self.hangup.set_result(None)
        while not self._queue.empty():
            self._queue.get_nowait()  # lines nobody can be answered for
        self._queue.put_nowait(HUNG_UP)

    def _peer_gone(self) -> bool:
        """Whether the client closed its end for good (not just its sending half)."""
        fd = self._fileno()
        if fd < 0:
            return True  # our side is closed already
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return any(events & _GONE for _, events in poller.poll(0))
