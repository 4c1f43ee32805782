"""A transport that records what it is given and fails on demand, for tests of the
dispatcher without a network."""

from __future__ import annotations

from hyperhive.core.notify.sinks import Delivery, DeliveryFailed
from hyperhive.settings import Sink


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Delivery]] = []  # what was delivered: sink name, delivery
        self.tries: list[tuple[str, int]] = []  # every attempt: sink name, outbox id
        self.failing: set[str] = set()  # sink names whose sends fail
        self.closed = False

    async def send(self, sink: Sink, delivery: Delivery, /) -> None:
        self.tries.append((sink.name, delivery.id))
        if sink.name in self.failing:
            raise DeliveryFailed(f"{sink.name}: told to fail")
        self.sent.append((sink.name, delivery))

    async def close(self) -> None:
        self.closed = True
