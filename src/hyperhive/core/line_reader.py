"""One connection's request lines, read ahead of their answers within bounds.

A task per connection reads lines into a queue of one, so a client can make
the core hold no more than the line being answered, one waiting and one being
read. Reading on while a request is answered is what lets the core notice a
hangup at once: the client closing its end shows up as EOF here, and the
request in flight (a long-poll, say) is cancelled instead of holding its
descriptor for up to an hour. Where EOF cannot be seen — the reader is held
up by a full queue, or the client half-closed and still waits for answers —
the reader asks the kernel about the peer once a second instead.
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
    """Lines of one connection, each a complete request line (blank ones dropped)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        fileno: Callable[[], int],
        *,
        max_line: int,
        line_timeout: float,
    ) -> None:
        self._reader = reader
        self._fileno = fileno
        self._max_line = max_line
        self._line_timeout = line_timeout
        self._queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=1)
        self.hangup: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.receiving = False  # a line has begun and not yet ended
        self._awaiting = False  # waiting for the client with nothing of it unread
        self._task: asyncio.Task[None] | None = asyncio.create_task(self._run())

    async def next(self) -> Item:
        """The next line, or the :class:`End` (repeated once reached)."""
        item = await self._queue.get()
        if isinstance(item, End):
            self._queue.put_nowait(item)  # the reader has stopped: the slot is free
        return item

    @property
    def quiet(self) -> bool:
        """Everything the client sent has been taken: closing now drops no request."""
        return self._awaiting and self._queue.empty()

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # The cancelled task keeps its traceback, whose frames hold this reader:
            # letting go of the task breaks the cycle, so the client's buffered bytes
            # are freed at once rather than whenever the cyclic GC next runs.
            self._task = None

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
        self.receiving = True
        try:
            async with asyncio.timeout(self._line_timeout):
                line = head + await self._reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            line = head + exc.partial
        except asyncio.LimitOverrunError:
            return End(TooLarge(f"line exceeds {self._max_line} bytes"))
        except TimeoutError:
            limit = self._line_timeout
            return End(TimedOut(f"a line must end within {limit:g} s of its first byte"))
        finally:
            self.receiving = False
        if len(line) - line.endswith(b"\n") > self._max_line:
            return End(TooLarge(f"line exceeds {self._max_line} bytes"))
        return line

    async def _offer(self, item: Item) -> bool:
        """Queue ``item``; False if the client hung up while the queue stayed full."""
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
