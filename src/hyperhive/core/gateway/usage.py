"""What one upstream response used, read from its body as it passes through.

The gateway feeds every chunk of a 2xx body to a :class:`UsageReader` as it forwards it,
then asks for :meth:`UsageReader.result`. A streamed body is Server-Sent Events: the
usage is in ``message_start.message.usage`` and then in each ``message_delta.usage``,
whose counts are cumulative, so for every field the latest value seen wins. A plain body
is one JSON object with ``model`` and ``usage``.

The body is the upstream's, relayed for an agent, so the reader is bounded: an SSE line
longer than :data:`MAX_LINE` is skipped (not buffered), and a plain body longer than
:data:`MAX_JSON` is not parsed. Chunk boundaries fall anywhere, even inside a UTF-8
character or between ``\\r`` and ``\\n``; the result never depends on them.
"""

from __future__ import annotations

import json
from typing import Final

from hyperhive.core.gateway.seams import Usage

__all__ = ["FIELDS", "MAX_JSON", "MAX_LINE", "UsageReader", "usage_of"]

MAX_LINE: Final = 1024 * 1024
MAX_JSON: Final = 32 * 1024 * 1024
FIELDS: Final = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)
# Only these events carry usage; the many content deltas are skipped without parsing.
_USAGE_EVENTS: Final = frozenset({b"message_start", b"message_delta"})
# Far above any real count; a bigger number is not a count and is ignored.
_MAX_COUNT: Final = 2**53


class UsageReader:
    def __init__(self, streaming: bool) -> None:
        self._streaming = streaming
        self._partial = bytearray()  # the current line, not yet ended
        self._skipping = False  # the current line grew past MAX_LINE: drop it to its end
        self._event = b""  # the current event's ``event:`` name
        self._data: list[bytes] = []  # the current event's ``data:`` lines
        self._data_size = 0
        self._body = bytearray()  # a plain body, whole
        self._too_big = False
        self._model: str | None = None
        self._counts: dict[str, int] = {}

    def feed(self, chunk: bytes) -> None:
        if not self._streaming:
            if not self._too_big:
                self._body += chunk
                if len(self._body) > MAX_JSON:
                    self._too_big = True
                    self._body = bytearray()
            return
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                self._keep(chunk[start:])
                return
            if self._skipping:
                self._skipping = False
                self._partial.clear()
            else:
                self._partial += chunk[start:end]
                self._line(bytes(self._partial))
                self._partial.clear()
            start = end + 1

    def result(self) -> tuple[str | None, Usage] | None:
        """The model and the usage the body reported; None if it reported none."""
        if self._streaming:
            # A last event without its blank line still counts (the stream was cut short).
            if not self._skipping and self._partial:
                self._line(bytes(self._partial))
                self._partial.clear()
            self._dispatch()
        elif self._body:
            self._plain(bytes(self._body))
            self._body = bytearray()
        if not self._counts:
            return None
        return self._model, Usage(**self._counts)

    # -- streamed -------------------------------------------------------------------

    def _keep(self, rest: bytes) -> None:
        if self._skipping:
            return
        self._partial += rest
        if len(self._partial) > MAX_LINE:
            self._partial.clear()
            self._skipping = True

    def _line(self, line: bytes) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            self._dispatch()
            return
        name, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if name == b"event":
            self._event = value
        elif name == b"data" and (not self._event or self._event in _USAGE_EVENTS):
            self._data_size += len(value) + 1
            if self._data_size > MAX_LINE:
                self._data.clear()
            else:
                self._data.append(value)

    def _dispatch(self) -> None:
        data, oversized = self._data, self._data_size > MAX_LINE
        self._event, self._data, self._data_size = b"", [], 0
        if not data or oversized:
            return
        try:
            event = json.loads(b"\n".join(data))
        except (ValueError, RecursionError):
            return
        if not isinstance(event, dict):
            return
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message")
            if isinstance(message, dict):
                self._take_model(message.get("model"))
                self._take_usage(message.get("usage"))
        elif kind == "message_delta":
            self._take_usage(event.get("usage"))

    # -- plain ----------------------------------------------------------------------

    def _plain(self, body: bytes) -> None:
        try:
            message = json.loads(body)
        except (ValueError, RecursionError):
            return
        if isinstance(message, dict):
            self._take_model(message.get("model"))
            self._take_usage(message.get("usage"))

    # -- both -----------------------------------------------------------------------

    def _take_model(self, model: object) -> None:
        if isinstance(model, str) and 0 < len(model) <= 200:
            self._model = model

    def _take_usage(self, usage: object) -> None:
        if not isinstance(usage, dict):
            return
        for field in FIELDS:
            value = usage.get(field)
            # bool is an int; null (the API sends it for absent cache counts) is skipped.
            if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _MAX_COUNT:
                self._counts[field] = value


def usage_of(body: bytes, *, streaming: bool) -> tuple[str | None, Usage] | None:
    """A whole body at once (tests, and callers that buffer anyway)."""
    reader = UsageReader(streaming)
    reader.feed(body)
    return reader.result()
