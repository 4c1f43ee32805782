"""The dashboard's HTTP API against real uvicorn and an in-process core (bwrap backend,
fake engine): the views, the operator's actions, and the refusals of bad or forged input."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from hyperhive.agent.settings import port_for
from hyperhive.config import Config
from hyperhive.tokens import page_key
from hyperhive.web.security import CSRF_HEADER
from support.dashboard import Swarm, live_swarm, operator_client
from support.wire import until_status

WAIT = 30.0


@pytest.fixture
async def swarm(config: Config) -> AsyncIterator[Swarm]:
    async with live_swarm(config) as running:
        yield running


@pytest.fixture
async def http(swarm: Swarm) -> AsyncIterator[httpx.AsyncClient]:
    async with operator_client(swarm) as client:
        yield client


async def post(http: httpx.AsyncClient, swarm: Swarm, path: str, **fields: Any) -> httpx.Response:
    return await http.post(path, json=fields, headers={CSRF_HEADER: swarm.csrf})


async def test_the_page_is_a_shell_with_its_csrf_token_and_strict_headers(
    swarm: Swarm, http: httpx.AsyncClient
) -> None:
    page = await http.get("/")
    assert page.status_code == 200 and f'content="{swarm.csrf}"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    for name in ("hive.css", "dashboard.css", "dashboard.js"):
        assert (await http.get(f"/static/{name}")).status_code == 200
    assert (await http.get("/static/../hive.db")).status_code == 404


async def test_agents_show_backend_state_model_link_and_cost_so_far(
    swarm: Swarm, http: httpx.AsyncClient
) -> None:
    await swarm.host("spawn", name="bob")
    await swarm.host("send", to="bob", body="count this turn")
    # The harness acks after its turn (and its turn_end record): then it is counted.
    await until_status(swarm.hive.config.host_socket, lambda s: "bob" not in s["pending"])
    rows = {a["name"]: a for a in (await http.get("/api/agents")).json()["agents"]}
    bob = rows["bob"]
    assert bob["container"]["backend"] == "bwrap" and bob["container"]["state"] == "running"
    assert bob["stats"]["turns"] == 1 and bob["stats"]["input_tokens"] > 0
    assert bob["stats"]["cost_usd"] == 0.0 and bob["model"] is None
    assert bob["port"] == port_for("bob")  # the port the core assigned: its hashed one
    # A bwrap agent's port is in a network of its own: the core relays it to the page,
    # so the direct link is there while the relay listens (core/page_relay.py).
    bob_key = page_key(swarm.token, "bob")
    assert bob["port_relayed"] is True
    assert bob["url"].startswith(f"http://localhost:{bob['port']}/?token={bob_key}")
    # The front door: the same page behind the dashboard's own origin.
    assert bob["page"] == "agents/bob/" and rows["hm1nd"]["page"] == "agents/hm1nd/"
    # An agent the host reaches gets the other loopback name (see agent_page_host), with
    # the key to that page alone, and where the dashboard is (no key), for approval links.
    hm1nd_key = page_key(swarm.token, "hm1nd")
    back = "&" + urlencode({"dashboard": swarm.base})
    assert rows["hm1nd"]["url"] == f"http://localhost:8000/?token={hm1nd_key}{back}"
    assert rows["hm1nd"]["container"] is None  # an external participant in these tests
    model_file = swarm.hive.config.state_dir / "agents" / "bob" / "state" / "hyperhive-model"
    model_file.write_text("claude-opus-4\n")
    rows = {a["name"]: a for a in (await http.get("/api/agents")).json()["agents"]}
    assert rows["bob"]["model"] == "claude-opus-4"


async def test_agents_with_the_same_tool_policy_share_one_copy_of_it(
    swarm: Swarm, http: httpx.AsyncClient
) -> None:
    for name in ("bob", "carol"):
        await swarm.host("spawn", name=name)
    listing = (await http.get("/api/agents")).json()
    rows = {a["name"]: a for a in listing["agents"]}
    assert rows["bob"]["tools"] == rows["carol"]["tools"] == 0
    assert len(listing["tool_sets"]) == 1
    direct = {a["name"]: a for a in await swarm.host("agents")}
    assert listing["tool_sets"][0] == direct["bob"]["tools"]  # the op's own, unchanged
    assert rows["hm1nd"]["tools"] is None  # no container: no policy


async def test_stop_start_restart_act_at_once_and_answer_the_new_state(
    swarm: Swarm, http: httpx.AsyncClient
) -> None:
    await swarm.host("spawn", name="bob")
    for action, state in (("stop", "stopped"), ("start", "running"), ("restart", "running")):
        answer = await post(http, swarm, f"/api/agents/bob/{action}")
        assert answer.status_code == 200, answer.text
        assert answer.json()["ok"] and answer.json()["result"]["state"] == state
        assert swarm.hive.lifecycle.records.get("bob").state == state  # type: ignore[union-attr]


async def test_destroy_needs_the_agents_name_typed_to_confirm(
    swarm: Swarm, http: httpx.AsyncClient
) -> None:
    await swarm.host("spawn", name="bob")
    refused = await post(http, swarm, "/api/agents/bob/destroy", confirm="bo")
    assert refused.status_code == 400 and "type the agent's name (bob)" in refused.json()["message"]
    assert "bob" in swarm.hive.registry
    done = await post(http, swarm, "/api/agents/bob/destroy", confirm="bob", purge=True)
    assert done.status_code == 200 and done.json()["result"]["purged"] is True
    assert "bob" not in swarm.hive.registry
    assert not (swarm.hive.config.state_dir / "agents" / "bob").exists()


async def test_approving_a_spawn_brings_the_agent_up_and_tells_the_manager(
    swarm: Swarm, http: httpx.AsyncClient
) -> None:
    asked = await swarm.manager("request_spawn", name="carol", reason="needs a tester")
    pending = (await http.get("/api/approvals")).json()["pending"]
    assert [(a["id"], a["kind"], a["requester"]) for a in pending] == [
        (asked["id"], "spawn", "hm1nd")
    ]
    answer = await post(http, swarm, f"/api/approvals/{asked['id']}/approve")
    assert answer.json() == {
        "ok": True,
        "message": f"approval #{asked['id']} approved → applied",
        "result": answer.json()["result"],
    }
    assert swarm.hive.lifecycle.records.get("carol").state == "running"  # type: ignore[union-attr]
    event = await swarm.manager_event()
    assert event["body"] == "approval_decided" and event["payload"]["decided_by"] == "operator"
    again = await post(http, swarm, f"/api/approvals/{asked['id']}/approve")
    assert again.status_code == 400 and again.json()["code"] == "already_decided"


async def test_a_pending_apply_commit_carries_its_diff_and_a_denial_keeps_the_reason(
    swarm: Swarm, http: httpx.AsyncClient
) -> None:
    await swarm.host("spawn", name="bob")
    sha = await swarm.propose("bob", 'role = "reviewer"\n', "make bob a reviewer")
    asked = await swarm.manager("request_apply_commit", name="bob", sha=sha, reason="review")
    (shown,) = (await http.get("/api/approvals")).json()["pending"]
    assert shown["kind"] == "apply_commit" and '+role = "reviewer"' in shown["diff"]
    no_reason = await post(http, swarm, f"/api/approvals/{asked['id']}/deny", reason=" ")
    assert no_reason.status_code == 400 and "reason" in no_reason.json()["message"]
    denied = await post(http, swarm, f"/api/approvals/{asked['id']}/deny", reason="not yet")
    assert denied.json()["result"]["state"] == "denied"
    listed = (await http.get("/api/approvals")).json()
    assert listed["pending"] == []
    assert [(a["id"], a["decision_reason"]) for a in listed["decided"]] == [
        (asked["id"], "not yet")
    ]
    event = await swarm.manager_event()
    assert event["payload"]["state"] == "denied"


@pytest.mark.parametrize(
    ("options", "multi", "answer", "expected"),
    [
        (["red", "blue"], False, "blue", "blue"),
        (["a", "b", "c"], True, ["c", "a"], ["a", "c"]),
        (None, False, "ship it", "ship it"),
    ],
)
async def test_an_answer_reaches_the_managers_inbox(
    swarm: Swarm,
    http: httpx.AsyncClient,
    options: list[str] | None,
    multi: bool,
    answer: Any,
    expected: Any,
) -> None:
    extra: dict[str, Any] = {"options": options} if options else {}
    asked = await swarm.manager("ask_operator", question="which?", multi=multi, **extra)
    (pending,) = (await http.get("/api/questions")).json()["pending"]
    assert pending["id"] == asked["id"] and pending["options"] == options
    done = await post(http, swarm, f"/api/questions/{asked['id']}/answer", answer=answer)
    assert done.status_code == 200, done.text
    event = await swarm.manager_event()
    assert event["body"] == "operator_answered" and event["payload"]["answer"] == expected
    assert (await http.get("/api/questions")).json()["answered"][0]["answered_by"] == "operator"


async def test_send_posts_as_the_operator_and_the_flow_lists_it(
    swarm: Swarm, http: httpx.AsyncClient
) -> None:
    sent = await post(http, swarm, "/api/send", to="hm1nd", body="hello <manager>")
    assert sent.status_code == 200 and sent.json()["result"]["from"] == "operator"
    flow = (await http.get("/api/messages", params={"agent": "hm1nd"})).json()
    assert [(m["from"], m["to"], m["body"]) for m in flow] == [
        ("operator", "hm1nd", "hello <manager>")
    ]
    assert (await http.get("/api/messages", params={"agent": "nobody"})).status_code == 400
    assert (await http.get("/api/messages", params={"limit": "0"})).status_code == 400


@pytest.mark.parametrize(
    ("path", "body", "says"),
    [
        ("/api/send", {"to": "hm1nd"}, "missing field 'body'"),
        ("/api/send", {"to": "hm1nd", "body": "x", "as": "bob"}, "unknown field(s): as"),
        ("/api/send", {"to": "ghost", "body": "x"}, "no participant named 'ghost'"),
        ("/api/send", {"to": "hm1nd", "body": "   "}, "message body is empty"),
        ("/api/send", {"to": 7, "body": "x"}, "field 'to' must be a string"),
        ("/api/send", [1, 2], "must be an object"),
        ("/api/questions/1/answer", {"answer": "x"}, "no question with id 1"),
        ("/api/questions/x/answer", {"answer": "x"}, "question id must be an integer"),
        ("/api/approvals/99/approve", {}, "no approval"),
        ("/api/approvals/1/merge", {}, "unknown action 'merge'"),
        ("/api/agents/ghost/start", {}, "no agent named 'ghost'"),
        ("/api/agents/hm1nd/explode", {}, "unknown action 'explode'"),
        ("/api/agents/hm1nd/destroy", {"confirm": "hm1nd", "purge": "yes"}, "true or false"),
    ],
)
async def test_bad_input_is_a_clear_400_that_changes_nothing(
    swarm: Swarm, http: httpx.AsyncClient, path: str, body: Any, says: str
) -> None:
    before = (await http.get("/api/messages")).json()
    answer = await http.post(path, json=body, headers={CSRF_HEADER: swarm.csrf})
    assert answer.status_code == 400, answer.text
    assert answer.json()["ok"] is False and says in answer.json()["message"]
    assert (await http.get("/api/messages")).json() == before
    assert "hm1nd" in swarm.hive.registry


async def test_a_body_that_is_not_json_is_refused(swarm: Swarm, http: httpx.AsyncClient) -> None:
    headers = {CSRF_HEADER: swarm.csrf}
    form = await http.post("/api/send", data={"to": "hm1nd", "body": "x"}, headers=headers)
    assert form.status_code == 400 and "application/json" in form.json()["message"]
    broken = await http.post(
        "/api/send", content=b"{", headers={**headers, "content-type": "application/json"}
    )
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["message"]
    huge = await post(http, swarm, "/api/send", to="hm1nd", body="x" * (1024 * 1024))
    assert huge.status_code == 400 and "too large" in huge.json()["message"]


@pytest.mark.parametrize(
    "headers",
    [
        {},  # a plain cross-site form cannot set the header
        {CSRF_HEADER: "guessed"},
        {"Sec-Fetch-Site": "cross-site", "use-csrf": "1"},
        # Another port of this host (an agent's page or listener) is same-site, not same-origin.
        {"Sec-Fetch-Site": "same-site", "use-csrf": "1"},
        {"Origin": "http://evil.example", "use-csrf": "1"},
    ],
)
async def test_state_changing_requests_without_the_csrf_check_are_refused(
    swarm: Swarm, http: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    if headers.pop("use-csrf", None):
        headers[CSRF_HEADER] = swarm.csrf
    # A body that would be sent, were it not for the check.
    answer = await http.post("/api/send", json={"to": "hm1nd", "body": "forged"}, headers=headers)
    assert answer.status_code == 403 and answer.json()["ok"] is False
    assert (await http.get("/api/messages")).json() == []
