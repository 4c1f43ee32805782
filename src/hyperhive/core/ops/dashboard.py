"""The operator's way back into the dashboard: its URL with the operator token (host only)."""

from __future__ import annotations

from typing import Any

from hyperhive.core.operator_token import DashboardOff
from hyperhive.core.ops.base import Caller, Services
from hyperhive.core.protocol import Args


async def dashboard_url(s: Services, caller: Caller, args: Args) -> Any:
    args.finish()
    link = s.dashboard_link()
    if link is None:
        raise DashboardOff("this hive-c0re serves no dashboard (started with --no-dashboard)")
    return {"url": link.login_url()}
