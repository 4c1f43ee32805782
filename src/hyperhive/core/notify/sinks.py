"""How a notification leaves the core: a signed JSON webhook, an ntfy publish, or a
command (:mod:`hyperhive.core.notify.command`), behind one :class:`Transport`.

Every send is bounded by the sink's timeout in total; anything but a 2xx answer is a
failure; redirects are never followed (a receiver cannot send our signed body, or an
ntfy token, elsewhere). Errors name the sink, never its URL, secret or token.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from hyperhive.core.notify.command import CommandFailed, run_command
from hyperhive.core.notify.events import Notification, one_line
from hyperhive.errors import HiveError
from hyperhive.settings import CommandSink, NtfySink, Sink, WebhookSink

NTFY_BODY_MAX = 4000  # ntfy turns a longer message into an attachment


class DeliveryFailed(HiveError):
    code = "delivery_failed"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One try at one outbox row: its id (the receiver's key to drop duplicates), what it
    says, and the dashboard link made absolute."""

    id: int
    note: Notification
    link: str

    def body(self) -> bytes:
        wire: dict[str, Any] = {"id": self.id, **self.note.to_wire(), "link": self.link}
        return json.dumps(wire, ensure_ascii=False).encode()


class Transport(Protocol):
    async def send(self, sink: Sink, delivery: Delivery, /) -> None:
        """Deliver, or raise :class:`DeliveryFailed`."""

    async def close(self) -> None: ...


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_request(sink: WebhookSink, delivery: Delivery) -> tuple[bytes, dict[str, str]]:
    body = delivery.body()
    headers = {
        "Content-Type": "application/json",
        "X-Hyperhive-Event": delivery.note.kind,
        "X-Hyperhive-Delivery": str(delivery.id),
    }
    if sink.secret:
        headers["X-Hyperhive-Signature"] = signature(sink.secret, body)
    return body, headers


def header_text(text: str) -> str:
    """A header value: ASCII as is, else an RFC 2047 word, which ntfy decodes."""
    flat = one_line(text)
    if flat.isascii():
        return flat
    return "=?utf-8?b?" + base64.b64encode(flat.encode()).decode() + "?="


def ntfy_request(sink: NtfySink, delivery: Delivery) -> tuple[bytes, dict[str, str]]:
    note = delivery.note
    body = note.body.encode()[:NTFY_BODY_MAX]
    headers = {
        "Title": header_text(note.title),
        "Priority": str(sink.priority if sink.priority is not None else note.priority),
        "Tags": ",".join(header_text(t) for t in (*note.tags, *sink.tags)),
        "Click": delivery.link,
        "X-Hyperhive-Delivery": str(delivery.id),
    }
    if sink.token:
        headers["Authorization"] = f"Bearer {sink.token}"
    return body, headers


class HttpTransport:
    """The real transport: one httpx client for the web sinks, and commands."""

    def __init__(self) -> None:
        self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False)

    async def send(self, sink: Sink, delivery: Delivery, /) -> None:
        if isinstance(sink, CommandSink):
            try:
                await run_command(sink.argv, delivery.body(), sink.timeout)
            except CommandFailed as exc:
                raise DeliveryFailed(f"{sink.name}: {exc.message}") from None
            return
        if isinstance(sink, WebhookSink):
            body, headers = webhook_request(sink, delivery)
        else:
            body, headers = ntfy_request(sink, delivery)
        await self._post(sink, body, headers)

    async def _post(
        self, sink: WebhookSink | NtfySink, body: bytes, headers: dict[str, str]
    ) -> None:
        name, timeout = sink.name, sink.timeout
        try:
            async with asyncio.timeout(timeout):
                # Streamed and not read: a receiver cannot make us hold a large answer.
                request = self._client.build_request(
                    "POST", sink.url, content=body, headers=headers, timeout=timeout
                )
                response = await self._client.send(request, stream=True)
                await response.aclose()
        except TimeoutError:
            raise DeliveryFailed(f"{name}: no answer within {timeout:g}s") from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            # httpx's messages can name the URL, which may hold a token: say the kind.
            raise DeliveryFailed(f"{name}: {type(exc).__name__}") from None
        if not 200 <= response.status_code < 300:
            raise DeliveryFailed(f"{name}: answered HTTP {response.status_code}")

    async def close(self) -> None:
        await self._client.aclose()
