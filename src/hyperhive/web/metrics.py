"""``GET /metrics``: the core's ``metrics`` op in Prometheus text format, for a scraper.

Behind the dashboard's gate like every route (a scraper presents the operator token as
``Authorization: Bearer <token>``). Each scrape builds a fresh registry around one
collector over the op's snapshot, so nothing is kept between scrapes and every label
value comes from the core's bounded sets (the registry's agents, fixed kinds and reasons).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from hyperhive.errors import HiveError
from hyperhive.web.answers import NO_STORE, refused
from hyperhive.web.dashboard_state import dashboard_of

PREFIX = "hyperhive_"
# "pending" is a gauge of its own; "folded": gone out as part of a digest.
NOTIFY_COUNTED = ("delivered", "failed", "dropped", "folded")


def _counter(name: str, doc: str, labels: list[str]) -> CounterMetricFamily:
    # prometheus_client adds the "_total" of a counter's samples itself.
    return CounterMetricFamily(PREFIX + name, doc, labels=labels)


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, doc, labels=labels)


def _one(family: CounterMetricFamily | GaugeMetricFamily, value: float) -> Metric:
    family.add_metric([], value)
    return family


def _by(family: CounterMetricFamily | GaugeMetricFamily, values: Mapping[str, Any]) -> Metric:
    for label, value in sorted(values.items()):
        family.add_metric([label], value)
    return family


class SnapshotCollector(Collector):
    """The ``metrics`` op's answer (core/ops/metrics.py) as metric families."""

    def __init__(self, snap: Mapping[str, Any]) -> None:
        self._snap = snap

    def collect(self) -> Iterator[Metric]:
        snap, messages = self._snap, self._snap["messages"]
        yield _one(_counter("messages_sent", "Messages stored for delivery", []), messages["sent"])
        yield _one(
            _counter("messages_delivered", "Messages delivered (acked)", []),
            messages["delivered"],
        )
        yield _one(
            _counter(
                "messages_found_by_recheck",
                "Messages of this host's agents a signal did not bring (found by the re-check)",
                [],
            ),
            messages.get("found_by_recheck", 0),
        )
        refused = _counter("messages_refused", "Sends refused, by reason", ["reason"])
        yield _by(refused, messages["refused"])
        yield _one(
            _counter("dead_letters", "Messages dead-lettered since start", []),
            snap["dead_letters"],
        )
        yield _by(
            _gauge("queue_depth", "Messages queued or leased", ["agent"]), snap["queue_depth"]
        )
        pending = _gauge("approvals_pending", "Approvals waiting, by kind", ["kind"])
        yield _by(pending, snap["approvals_pending"])
        yield _one(_gauge("questions_pending", "Questions waiting", []), snap["questions_pending"])
        yield _by(_gauge("agents", "Agents by container state", ["state"]), snap["agents"])
        yield _by(_counter("turns", "Turns ended since start", ["agent"]), snap["turns"])
        yield from self._spend(snap["spend"])
        yield from self._notifications(snap["notifications"])
        yield _by(_gauge("stalls", "Current stalls, by what", ["what"]), snap["stalls"])

    def _spend(self, spend: Mapping[str, Any]) -> Iterator[Metric]:
        tokens = _counter("tokens", "Model tokens used, by kind", ["agent", "kind"])
        cost = _counter("cost_usd", "Model spend in US dollars", ["agent"])
        for agent, found in sorted(spend.items()):
            for kind, count in sorted(found["tokens"].items()):
                tokens.add_metric([agent, kind], count)
            cost.add_metric([agent], found["cost_usd"])
        yield tokens
        yield cost

    def _notifications(self, sinks: Mapping[str, Mapping[str, int]]) -> Iterator[Metric]:
        counted = _counter("notifications", "Notification outcomes", ["sink", "outcome"])
        waiting = _gauge("notifications_pending", "Notifications not yet sent", ["sink"])
        for sink, found in sorted(sinks.items()):
            for outcome in NOTIFY_COUNTED:
                counted.add_metric([sink, outcome], found.get(outcome, 0))
            waiting.add_metric([sink], found.get("pending", 0))
        yield counted
        yield waiting


async def metrics(request: Request) -> Response:
    try:
        snap = await dashboard_of(request).desk.call("metrics")
    except HiveError as exc:
        return refused(exc)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snap))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST, headers=NO_STORE)
