"""The deferred engine builds the real one only when a turn needs it."""

from __future__ import annotations

from hyperhive.agent.engine import DeferredEngine, Engine
from hyperhive.agent.fake_engine import ScriptedEngine


async def test_nothing_is_built_until_the_first_turn_and_the_model_carries_over() -> None:
    built: list[ScriptedEngine] = []

    def build() -> Engine:
        built.append(ScriptedEngine())
        return built[-1]

    engine = DeferredEngine(build)
    await engine.set_model("claude-early")
    await engine.interrupt()
    await engine.close()
    assert built == [] and engine.model == "claude-early" and engine.session_id is None

    kinds = [event.kind async for event in engine.turn("hello")]
    assert kinds == ["system", "assistant", "result"]
    assert len(built) == 1 and built[0].models == ["claude-early"]
    assert engine.session_id == "fake-session-1"
    await engine.set_model("claude-late")
    assert built[0].model == "claude-late"
