"""The network stack's command lines and the pure decisions around them: which tool,
which resolv.conf, when a namespace counts as routed, and what bwrap is told."""

from __future__ import annotations

from pathlib import Path

from hyperhive.backends.base import ContainerSpec
from hyperhive.backends.bwrap_argv import bwrap_argv
from hyperhive.backends.user_net import (
    RESOLVER,
    find_tool,
    has_default_route,
    pasta_argv,
    place_resolv,
    sandbox_resolv,
    slirp4netns_argv,
)


def spec(tmp: Path, **extra: object) -> ContainerSpec:
    return ContainerSpec(
        name="alice",
        role="agent",
        socket_dir=tmp / "run",
        state_dir=tmp / "state",
        claude_dir=tmp / "claude",
        config_dir=tmp / "config",
        config_sha="c0ffee",
        command=("hive-ag3nt", "serve"),
        **extra,  # type: ignore[arg-type]
    )


def test_slirp4netns_never_reaches_the_hosts_loopback_and_says_when_it_is_up() -> None:
    argv = slirp4netns_argv("/usr/bin/slirp4netns", 4242, userns=None, ready_fd=7, exit_fd=8)
    assert argv == [
        "/usr/bin/slirp4netns", "--configure", "--mtu=65520", "--disable-host-loopback",
        "--enable-sandbox", "--enable-seccomp", "--ready-fd=7", "--exit-fd=8",
        "--netns-type=path", "/proc/4242/ns/net", "tap0",
    ]  # fmt: skip


def test_slirp4netns_joins_an_unprivileged_sandboxs_user_namespace_first() -> None:
    argv = slirp4netns_argv("slirp4netns", 4242, userns="/proc/4242/ns/user", ready_fd=7, exit_fd=8)
    assert "--userns-path=/proc/4242/ns/user" in argv
    assert "--enable-sandbox" not in argv  # it fails there, with nothing to drop
    assert argv.index("--userns-path=/proc/4242/ns/user") < argv.index("/proc/4242/ns/net")
    assert "--disable-host-loopback" in argv


def test_pasta_maps_no_gateway_to_the_host_and_forwards_no_port_either_way() -> None:
    argv = pasta_argv("/usr/bin/pasta", 4242, userns=None, dns_forward=False)
    assert argv == [
        "/usr/bin/pasta", "--config-net", "--foreground", "--quiet", "--mtu", "65520",
        "--ns-ifname", "tap0", "--no-map-gw",
        "--tcp-ports", "none", "--udp-ports", "none", "--tcp-ns", "none", "--udp-ns", "none",
        "--netns", "/proc/4242/ns/net",
    ]  # fmt: skip
    joined = pasta_argv("pasta", 4242, userns="/proc/4242/ns/user", dns_forward=True)
    assert joined[-4:] == ["--userns", "/proc/4242/ns/user", "--netns", "/proc/4242/ns/net"]
    assert joined[joined.index("--dns-forward") + 1] == RESOLVER


def test_the_first_installed_tool_is_chosen_and_none_when_neither_is(tmp_path: Path) -> None:
    for name in ("slirp4netns", "pasta"):
        tool = tmp_path / name
        tool.write_text("#!/bin/sh\n")
        tool.chmod(0o755)
    slirp, pasta = str(tmp_path / "slirp4netns"), str(tmp_path / "pasta")
    assert find_tool((slirp, pasta)) is not None
    assert find_tool((slirp, pasta)) == find_tool((slirp,))
    chosen = find_tool((str(tmp_path / "missing" / "slirp4netns"), pasta))
    assert chosen is not None and (chosen.kind, chosen.path) == ("pasta", pasta)
    assert find_tool((str(tmp_path / "missing" / "slirp4netns"),)) is None
    assert find_tool(()) is None
    other = tmp_path / "vpnkit"
    other.write_text("#!/bin/sh\n")
    other.chmod(0o755)
    assert find_tool((str(other),)) is None  # only the stacks it knows how to drive


def test_a_loopback_resolver_becomes_the_stacks_and_any_other_is_kept() -> None:
    resolved = "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch example.org\n"
    assert sandbox_resolv(resolved) == (
        "nameserver 10.0.2.3\noptions edns0 trust-ad\nsearch example.org\n"
    )
    # Several loopback ones become one; a real one beside them is kept.
    mixed = "nameserver ::1\nnameserver 127.0.0.1\nnameserver 192.0.2.53\n"
    assert sandbox_resolv(mixed) == "nameserver 10.0.2.3\nnameserver 192.0.2.53\n"
    assert sandbox_resolv("nameserver 10.255.255.53\n") is None
    assert sandbox_resolv("nameserver fe80::1%eth0\n") is None
    assert sandbox_resolv("# nothing\n") is None
    assert sandbox_resolv("nameserver not-an-address\n") is None


def test_the_generated_resolv_conf_is_readable_and_goes_when_not_needed(tmp_path: Path) -> None:
    host = tmp_path / "host-resolv.conf"
    host.write_text("nameserver 127.0.0.53\n")
    path = tmp_path / "backend" / "h-alice.resolv.conf"
    assert place_resolv(path, host) is True
    assert path.read_text() == "nameserver 10.0.2.3\n"
    assert path.stat().st_mode & 0o777 == 0o644
    host.write_text("nameserver 192.0.2.53\n")
    assert place_resolv(path, host) is False
    assert not path.exists()
    host.write_text("nameserver 127.0.0.53\n")
    assert place_resolv(path, None) is False  # no network: nothing to resolve with
    assert not path.exists()
    assert place_resolv(path, tmp_path / "no-such-file") is False


def test_only_a_route_to_everywhere_counts_as_a_default_route() -> None:
    header = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT"
    default = "tap0\t00000000\t0202000A\t0003\t0\t0\t0\t00000000\t0\t0\t0"
    subnet = "tap0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0"
    assert has_default_route(f"{header}\n{subnet}\n{default}\n")
    assert not has_default_route(f"{header}\n{subnet}\n")
    assert not has_default_route(header)


def test_every_sandbox_gets_its_own_network_and_a_networked_one_waits_for_its_stack(
    tmp_path: Path,
) -> None:
    offline = bwrap_argv(spec(tmp_path, network=False), needed=[], info_fd=5)
    online = bwrap_argv(spec(tmp_path), needed=[], info_fd=5, block_fd=6)
    for argv in (offline, online):
        assert argv.count("--unshare-net") == 1
        assert argv.index("--unshare-net") < argv.index("--")
    assert "--block-fd" not in offline
    assert online[online.index("--block-fd") + 1] == "6"
    assert "/etc/resolv.conf" not in online
    resolv = tmp_path / "h-alice.resolv.conf"
    bound = bwrap_argv(spec(tmp_path), needed=[], resolv_conf=resolv)
    at = bound.index(str(resolv))
    assert bound[at - 1 : at + 2] == ["--ro-bind", str(resolv), "/etc/resolv.conf"]
    # After the host's /etc is bound, so it lands on top of the host's file.
    assert bound.index("/etc") < at
