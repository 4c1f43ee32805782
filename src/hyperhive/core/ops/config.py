"""The operator's settings ops: ``config_show`` (the settings in force, no secret in
them) and ``config_reload`` (hive.toml read again; a bad file changes nothing)."""

from __future__ import annotations

from typing import Any, Final

from hyperhive.config import Config
from hyperhive.core.ops.audit import record
from hyperhive.core.ops.base import Caller, Services
from hyperhive.core.protocol import Args
from hyperhive.core.settings_source import SettingsSource, gateway_caps, hive_budget
from hyperhive.settings import CommandSink, NtfySink, PolicyRule, Settings, Sink, WebhookSink

SET: Final = "<set>"  # what show says for a secret that is set


async def config_show(s: Services, caller: Caller, args: Args) -> Any:
    args.finish()
    source = SettingsSource(s.config)
    return {
        "file": str(source.path),
        "file_exists": source.path.is_file(),
        "env": source.pinned(),
        "settings": settings_wire(s.settings.current(), s.config),
    }


async def config_reload(s: Services, caller: Caller, args: Args) -> Any:
    args.finish()
    source = SettingsSource(s.config)
    changed = source.reload(s.settings, s.bus.publish)
    record(s, caller, "config_reloaded", None, {"file": str(source.path), "changed": changed})
    return {"file": str(source.path), "changed": changed}


def settings_wire(settings: Settings, config: Config) -> dict[str, Any]:
    """``settings`` in hive.toml's shape, with the values in force (a cap the file leaves
    out: the daemon's), and every secret as ``"<set>"``."""
    notify = settings.notify
    usd, tokens = hive_budget(settings, config)
    cap, per_agent = gateway_caps(settings, config)
    sinks: dict[str, list[dict[str, Any]]] = {"webhook": [], "ntfy": [], "command": []}
    for sink in notify.sinks:
        kind, wire = _sink_wire(sink)
        sinks[kind].append(wire)
    return {
        "budget": {"usd_per_day": usd, "tokens_per_day": tokens},
        "gateway": {"concurrency": cap, "per_agent": per_agent},
        "stall": {
            "thinking": settings.stall.thinking,
            "approval": settings.stall.approval,
            "lease": settings.stall.lease,
        },
        "notify": {
            "max_tries": notify.max_tries,
            "backoff_first": notify.backoff_first,
            "backoff_max": notify.backoff_max,
            "digest_after": notify.digest_after,
            "digest_window": notify.digest_window,
            "dashboard_url": notify.dashboard_url,
            **sinks,
        },
        "policy": [_rule_wire(rule) for rule in settings.policies],
    }


def _events(events: frozenset[str] | None) -> list[str] | None:
    return None if events is None else sorted(events)


def _sink_wire(sink: Sink) -> tuple[str, dict[str, Any]]:
    if isinstance(sink, WebhookSink):
        return "webhook", {
            "name": sink.name,
            "url": sink.url,
            "secret": None if sink.secret is None else SET,
            "events": _events(sink.events),
            "timeout": sink.timeout,
        }
    if isinstance(sink, NtfySink):
        return "ntfy", {
            "name": sink.name,
            "url": sink.url,
            "token": None if sink.token is None else SET,
            "priority": sink.priority,
            "tags": list(sink.tags),
            "events": _events(sink.events),
            "timeout": sink.timeout,
        }
    assert isinstance(sink, CommandSink)
    return "command", {
        "name": sink.name,
        "argv": list(sink.argv),
        "events": _events(sink.events),
        "timeout": sink.timeout,
    }


def _rule_wire(rule: PolicyRule) -> dict[str, Any]:
    return {
        "name": rule.name,
        "kind": rule.kind,
        "decision": rule.decision,
        "agent": rule.agent,
        "requester": rule.requester,
        "fields": None if rule.fields is None else sorted(rule.fields),
        "max_agents": rule.max_agents,
        "tool": rule.tool,
        "input": rule.input,
    }
