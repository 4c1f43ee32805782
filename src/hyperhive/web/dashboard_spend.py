"""What the hive spends on the model, as the dashboard shows it: today per agent, and over time.

Both views are the answers of the metering ops (``usage``, ``usage_series``) on
``host.sock``, read through the :class:`OperatorDesk`; the figures are the gateway's own
count of each response, never anything an agent reports about itself.
"""

from __future__ import annotations

import time
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response

from hyperhive.core.operator_desk import OperatorDesk
from hyperhive.errors import HiveError
from hyperhive.web.answers import refused, view
from hyperhive.web.dashboard_state import dashboard_of
from hyperhive.web.request_args import int_param
from hyperhive.web.spend import spend_rows

BUCKET_MIN: Final = 60
BUCKET_MAX: Final = 86_400
SINCE_MAX: Final = 2**40  # unix seconds: far beyond any date the hive will see


async def usage(request: Request) -> Response:
    try:
        return view(await usage_view(dashboard_of(request).desk))
    except HiveError as exc:
        return refused(exc)


async def series(request: Request) -> Response:
    query = request.query_params
    try:
        bucket = int_param(query.get("bucket"), "bucket", BUCKET_MIN, BUCKET_MAX)
        since = int_param(query.get("since"), "since", 0, SINCE_MAX)
        agent = query.get("agent") or None
        return view(await series_view(dashboard_of(request).desk, agent, since, bucket))
    except HiveError as exc:
        return refused(exc)


async def usage_view(desk: OperatorDesk, agent: str | None = None) -> dict[str, Any]:
    """Today's spend: the hive's, and per agent its counters, budget, share and state."""
    found: dict[str, Any] = await desk.call("usage", agent=agent)
    return {"now": time.time(), **spend_rows(found)}


async def series_view(
    desk: OperatorDesk, agent: str | None, since: int | None, bucket: int | None
) -> dict[str, Any]:
    """Spend per bucket of time per agent (only buckets with traffic), for the plot."""
    found: dict[str, Any] = await desk.call(
        "usage_series", agent=agent, since=None if since is None else float(since), bucket=bucket
    )
    return {"now": time.time(), **found}
