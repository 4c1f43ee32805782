"""What the dashboard's endpoints depend on, kept on ``app.state.dashboard``."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import Request

from hyperhive.core.operator_desk import OperatorDesk
from hyperhive.web.agent_states import AgentStates
from hyperhive.web.dashboard_feed import BusFeed
from hyperhive.web.listing_cache import Listings


@dataclass(frozen=True, slots=True)
class DashboardState:
    desk: OperatorDesk  # every read and every action goes through it
    token: str  # the operator token: each agent's page key is derived from it
    csrf: str
    feed: BusFeed
    heartbeat: float
    states: AgentStates = field(default_factory=AgentStates)
    listings: Listings = field(default_factory=Listings)


def dashboard_of(request: Request) -> DashboardState:
    found = request.app.state.dashboard
    if not isinstance(found, DashboardState):
        raise TypeError("not a dashboard app")  # a wiring bug, not a request's fault
    return found
