"""Take ``docs/dashboard.png``: the dashboard over a small live swarm.

A real in-process core with the bubblewrap backend runs hm1nd and two agents (their
harnesses on the fake engine, so no API key is needed); the script plays the manager and the
agents on their sockets to leave a few messages, a pending ApplyCommit with a diff, a pending
question and some history, then photographs the page in headless Chromium.

    .venv/bin/python docs/screenshot_dashboard.py [out.png]
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from playwright.async_api import async_playwright

from hyperhive.backends.registry import choose
from hyperhive.client import Client
from hyperhive.config import Config
from hyperhive.core.hive import Hive
from hyperhive.daemons.dashboard import serve_dashboard, stop_dashboard

CHROMIUM = "/usr/bin/chromium"
ENV = {"HYPERHIVE_ENGINE": "fake", "HYPERHIVE_LOG_LEVEL": "WARNING"}
SCOUT = 'role = "You map codebases and report hot spots."\nmodel = "claude-haiku-4-5"\n'
CODER = (
    'role = "You write small, tested patches."\nmodel = "claude-sonnet-4-5"\n'
    'allow_send = ["hm1nd", "operator"]\n'
)
CODER_NEXT = (
    'role = "You write small, tested patches and review scout\'s findings."\n'
    'model = "claude-opus-4-1"\nallow_send = ["hm1nd", "operator", "scout"]\n\n'
    "[sandbox]\nnetwork = false\n"
)


async def call(path: Path, op: str, **args: Any) -> Any:
    async with await Client.connect(path) as client:
        return await client.call(op, **args)


async def git(cwd: Path, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "git", *args, cwd=cwd, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    return out.decode().strip()


async def stage(hive: Hive) -> None:
    cfg = hive.config
    host, mgr = cfg.host_socket, cfg.agent_socket("hm1nd", manager=True)
    await hive.lifecycle.spawn("scout", SCOUT)
    await hive.lifecycle.spawn("coder", CODER)
    await call(host, "send", to="hm1nd", body="the parser is slow on big inputs; find out why")
    await call(mgr, "send", to="scout", body="map src/parse and report the hot spots")
    scout = cfg.agent_socket("scout", manager=False)
    await call(scout, "send", to="hm1nd", body="3 hot spots: tokenize() copies, a quadratic "
               "join in emit(), and no cache in resolve()")  # fmt: skip
    await call(mgr, "send", to="coder", body="fix the quadratic join in emit(); add a benchmark")
    coder = cfg.agent_socket("coder", manager=False)
    await call(coder, "send", to="hm1nd", body="done: emit() is linear now, 41x faster on 1 MB")
    denied = await call(mgr, "request_spawn", name="tester", reason="a fuzzing agent")
    await call(host, "deny", id=denied["id"], reason="later: one new agent at a time")
    asked = await call(mgr, "ask_operator", question="ship the emit() fix today?")
    await call(host, "answer", id=asked["id"], answer="yes, after the benchmark is green")
    repo = cfg.state_dir / "proposed" / "coder" / "config"
    (repo / "agent.toml").write_text(CODER_NEXT)
    await git(repo, "commit", "-qam", "coder: review scout's findings, opus, no network")
    sha = await git(repo, "rev-parse", "HEAD")
    await call(mgr, "request_apply_commit", name="coder", sha=sha,
               reason="let coder read scout's notes directly; opus for the refactor")  # fmt: skip
    await call(mgr, "ask_operator", question="which branch should coder target?",
               options=["main", "release-0.2", "parser-rewrite"])  # fmt: skip
    # Let the harnesses finish their turns, so cost and tokens show.
    # Each try is a round trip to the core, which answers once the loop has run again.
    async with await Client.connect(host) as client, asyncio.timeout(30):
        while (await client.call("status"))["pending"]:
            pass


async def main(out: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix="hhshot", dir="/tmp"))
    config = Config(state_dir=root / "state", run_dir=root / "run")
    backend = choose("bwrap", work_dir=config.state_dir / "backend", hide=(root,))
    hive = Hive(config, backend, env=ENV)
    await hive.start(manager=True)
    server = None
    try:
        await stage(hive)
        server = await serve_dashboard(hive, "127.0.0.1", 0, None)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
            )
            page = await browser.new_page(
                viewport={"width": 1440, "height": 1180}, device_scale_factor=1
            )
            await page.goto(f"http://127.0.0.1:{server.port}/")
            await page.locator("#link").filter(has_text="live").wait_for(timeout=10000)
            await page.locator("#approval-list pre.diff").wait_for(timeout=10000)
            await (
                page.locator('[data-agent="coder"] .badge')
                .filter(has_text="running")
                .wait_for(timeout=10000)
            )
            # Live traffic after the page loaded, so core events show in the flow too.
            await call(hive.config.host_socket, "restart", name="scout")
            await call(hive.config.agent_socket("scout", manager=False), "send", to="hm1nd",
                       body="back after the restart; caching resolve() next")  # fmt: skip
            await page.locator("#flow-log").filter(has_text="caching resolve()").wait_for()
            await page.locator("#flow-log .t-agent_state").last.wait_for(timeout=10000)
            await page.screenshot(path=str(out), full_page=False)
            await browser.close()
    finally:
        if server is not None:
            await stop_dashboard(server)
        await hive.shutdown(grace=2)
        shutil.rmtree(root, ignore_errors=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("dashboard.png"))
    asyncio.run(main(target))
