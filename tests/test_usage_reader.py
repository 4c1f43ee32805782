"""The usage reader (core/gateway/usage.py): the model and token counts of a Messages API
response, streamed or not, whatever the chunking, within bounded memory."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hyperhive.core.gateway.seams import Usage
from hyperhive.core.gateway.usage import MAX_JSON, MAX_LINE, UsageReader, usage_of


def sse(event: str, data: dict[str, Any], *, crlf: bool = False) -> bytes:
    end = "\r\n" if crlf else "\n"
    return f"event: {event}{end}data: {json.dumps(data)}{end}{end}".encode()


def stream(
    start: dict[str, Any], deltas: list[dict[str, Any]], texts: Sequence[str] = (), **kw: Any
) -> bytes:
    model = kw.get("model", "claude-sonnet-4-5-20250929")
    crlf = kw.get("crlf", False)
    out = sse(
        "message_start",
        {"type": "message_start", "message": {"id": "m", "model": model, "usage": start}},
        crlf=crlf,
    )
    out += sse("content_block_start", {"type": "content_block_start", "index": 0}, crlf=crlf)
    for text in texts:
        delta = {"type": "content_block_delta", "index": 0, "delta": {"text": text}}
        out += sse("content_block_delta", delta, crlf=crlf)
    for usage in deltas:
        out += sse("message_delta", {"type": "message_delta", "usage": usage}, crlf=crlf)
    return out + sse("message_stop", {"type": "message_stop"}, crlf=crlf)


def read(chunks: list[bytes], *, streaming: bool = True) -> tuple[str | None, Usage] | None:
    reader = UsageReader(streaming)
    for chunk in chunks:
        reader.feed(chunk)
    return reader.result()


def test_a_stream_reports_its_model_and_the_latest_count_of_each_field() -> None:
    body = stream(
        {"input_tokens": 120, "output_tokens": 1, "cache_read_input_tokens": 30},
        [{"output_tokens": 40}, {"output_tokens": 95, "cache_creation_input_tokens": 7}],
        ["Hello", " world"],
    )
    assert usage_of(body, streaming=True) == (
        "claude-sonnet-4-5-20250929",
        Usage(
            input_tokens=120,
            output_tokens=95,
            cache_creation_input_tokens=7,
            cache_read_input_tokens=30,
        ),
    )


def test_a_delta_that_repeats_the_input_count_replaces_it_rather_than_adding() -> None:
    body = stream(
        {"input_tokens": 10, "output_tokens": 1}, [{"input_tokens": 10, "output_tokens": 5}]
    )
    assert usage_of(body, streaming=True) == ("claude-sonnet-4-5-20250929", Usage(10, 5))


def test_a_plain_body_reports_its_model_and_usage() -> None:
    body = json.dumps(
        {
            "id": "m",
            "model": "claude-haiku-4-5",
            "content": [{"type": "text", "text": "hi"}],
            "usage": {
                "input_tokens": 3,
                "output_tokens": 4,
                "cache_creation_input_tokens": None,
                "cache_read_input_tokens": 2,
            },
        }
    ).encode()
    assert read([body[:7], body[7:]], streaming=False) == ("claude-haiku-4-5", Usage(3, 4, 0, 2))


def test_bodies_without_usage_report_none() -> None:
    assert read([b""]) is None
    assert read([b"event: ping\ndata: {}\n\n"]) is None
    assert read([b'{"type": "error"}'], streaming=False) is None
    assert read([b"not json at all"], streaming=False) is None
    assert read([b"[1, 2]"], streaming=False) is None


def test_nonsense_counts_are_ignored_field_by_field() -> None:
    body = stream(
        {"input_tokens": True, "output_tokens": -3, "cache_read_input_tokens": "7"},
        [{"output_tokens": 2**60}, {"output_tokens": 9, "input_tokens": 1.5}],
    )
    assert usage_of(body, streaming=True) == ("claude-sonnet-4-5-20250929", Usage(0, 9))


def test_a_stream_cut_short_still_reports_what_it_reported_so_far() -> None:
    body = stream({"input_tokens": 50, "output_tokens": 1}, [{"output_tokens": 20}])
    # Cut before the stop event, and the last delta's blank line with it.
    cut = body[: body.index(b"event: message_stop")].rstrip(b"\n")
    assert usage_of(cut, streaming=True) == ("claude-sonnet-4-5-20250929", Usage(50, 20))


def test_a_line_over_the_limit_is_skipped_and_reading_goes_on_after_it() -> None:
    huge = b"data: " + b"x" * (MAX_LINE + 10) + b"\n\n"
    body = huge + stream({"input_tokens": 5, "output_tokens": 1}, [{"output_tokens": 6}])
    reader = UsageReader(True)
    for i in range(0, len(body), 4096):
        reader.feed(body[i : i + 4096])
        assert len(reader._partial) <= MAX_LINE + 4096  # never the whole huge line
    assert reader.result() == ("claude-sonnet-4-5-20250929", Usage(5, 6))


def test_a_usage_event_split_over_many_data_lines_is_joined_but_bounded() -> None:
    body = (
        b'event: message_delta\ndata: {"type": "message_delta",\ndata: '
        b'"usage": {"output_tokens": 8}}\n\n'
    )
    assert usage_of(body, streaming=True) == (None, Usage(0, 8))
    many = b"event: message_delta\n" + b"data: 1\n" * (MAX_LINE // 4) + b"\n"
    assert usage_of(many, streaming=True) is None


def test_a_plain_body_over_its_bound_is_not_parsed() -> None:
    reader = UsageReader(False)
    reader.feed(b'{"usage": {"input_tokens": 1}, "pad": "')
    reader.feed(b"x" * MAX_JSON)
    reader.feed(b'"}')
    assert reader.result() is None


def test_events_named_only_in_their_data_are_read_too() -> None:
    body = b'data: {"type": "message_delta", "usage": {"output_tokens": 3}}\n\n'
    assert usage_of(body, streaming=True) == (None, Usage(0, 3))


COUNT = st.integers(min_value=0, max_value=10**9)
USAGE_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "input_tokens": COUNT,
        "output_tokens": COUNT,
        "cache_creation_input_tokens": COUNT,
        "cache_read_input_tokens": COUNT,
    },
)


@settings(max_examples=200, deadline=None)
@given(
    start=USAGE_FIELDS,
    deltas=st.lists(USAGE_FIELDS, max_size=4),
    texts=st.lists(st.text(max_size=40), max_size=6),
    crlf=st.booleans(),
    cuts=st.lists(st.integers(min_value=0, max_value=10**6), max_size=30),
)
def test_any_chunking_of_a_stream_gives_the_same_result(
    start: dict[str, int],
    deltas: list[dict[str, int]],
    texts: list[str],
    crlf: bool,
    cuts: list[int],
) -> None:
    body = stream(start, deltas, texts, crlf=crlf, model="claude-opus-4-5")
    points = sorted({c % (len(body) + 1) for c in cuts})
    chunks = [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]
    whole = usage_of(body, streaming=True)
    assert read(chunks) == whole
    expected: dict[str, int] = dict(start)
    for delta in deltas:
        expected.update(delta)
    assert whole == (None if not expected else ("claude-opus-4-5", Usage(**expected)))


@settings(max_examples=100, deadline=None)
@given(body=st.binary(max_size=2000), cuts=st.lists(st.integers(0, 2000), max_size=10))
def test_any_bytes_in_any_chunks_never_raise_and_never_depend_on_chunking(
    body: bytes, cuts: list[int]
) -> None:
    points = sorted({c % (len(body) + 1) for c in cuts})
    chunks = [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]
    assert read(chunks) == usage_of(body, streaming=True)
    assert read(chunks, streaming=False) == usage_of(body, streaming=False)
