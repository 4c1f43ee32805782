"""What a core finds at boot, on the fake backend: containers a dead core left
running, a new rev to rebuild for, containers the host lost. Each test runs two
cores over one state dir, the second one booting on what the first left."""

from __future__ import annotations

from hyperhive.backends.fake import FakeBackend
from hyperhive.config import Config
from support.fake_hive import host, make_hive


async def test_boot_stops_a_container_left_running_that_should_be_stopped(config: Config) -> None:
    containers = FakeBackend()
    first = make_hive(config, backend=containers)
    await first.start(manager=False)
    await host(first, "spawn", name="bob")
    await host(first, "stop", name="bob")
    await first.shutdown(grace=2)
    # A core that died mid-stop left it running.
    last = [c.spec for c in containers.calls if c.op == "start"][-1]
    assert last is not None
    await containers.start(last, lambda name, line: None)

    second = make_hive(config, backend=containers)
    booted = len(containers.calls)
    await second.start(manager=False)
    try:
        assert ("stop", "bob") in containers.ops[booted:]
        assert ("start", "bob") not in containers.ops[booted:]
        assert (await containers.status("bob")).state == "stopped"
        assert second.lifecycle.records.get("bob").desired == "stopped"  # type: ignore[union-attr]
    finally:
        await second.shutdown(grace=2)


async def test_boot_on_a_new_rev_recreates_a_lost_container_and_updates_the_rest(
    config: Config,
) -> None:
    made = FakeBackend()
    first = make_hive(config, backend=made)
    await first.start(manager=True)
    await host(first, "spawn", name="bob")
    for name in ("hm1nd", "bob"):  # as if an older hyperhive had made them
        first.lifecycle.records.put(name, made.name, hive_rev="0.0.0+older")
    await first.shutdown(grace=2)

    # The host lost bob's container (its backend dir wiped); hm1nd's is still there.
    [kept_spec] = [c.spec for c in made.calls if c.op == "create" and c.name == "hm1nd"]
    assert kept_spec is not None
    kept = FakeBackend()
    await kept.create(kept_spec)
    booted = len(kept.calls)
    second = make_hive(config, backend=kept)
    await second.start(manager=True)
    try:
        assert ("update", "hm1nd") in kept.ops[booted:] and ("create", "bob") in kept.ops[booted:]
        for name in ("hm1nd", "bob"):
            record = second.lifecycle.records.get(name)
            assert record is not None and record.state == "running"
            assert record.hive_rev == second.lifecycle.rev != "0.0.0+older"
            assert (await kept.status(name)).state == "running"
    finally:
        await second.shutdown(grace=2)


async def test_a_container_lost_without_a_new_rev_is_left_failed_at_boot(config: Config) -> None:
    first = make_hive(config)
    await first.start(manager=False)
    await host(first, "spawn", name="bob")
    await first.shutdown(grace=2)

    second = make_hive(config, backend=FakeBackend())
    await second.start(manager=False)
    try:
        record = second.lifecycle.records.get("bob")
        assert record is not None and record.state == "failed"
        assert record.last_error == "container h-bob does not exist"
    finally:
        await second.shutdown(grace=2)
