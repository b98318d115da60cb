"""The network probe against the real stack: this host, a rootfs, two real namespaces.

The live facts are cross-checked with iproute2 (``ip -j``, ``ss``) and ``sysctl``, which
read the kernel by other means (netlink, sock_diag) than the probe does (psutil, /proc).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import psutil
import pytest

from envpack.manifest import Manifest, dumps, schema_text
from envpack.redact import Redactor
from envpack.snapshot import network
from envpack.snapshot.capture import capture
from envpack.snapshot.context import CaptureContext, CaptureOptions
from envpack.snapshot.source import Source

CONFIG = Path(__file__).resolve().parents[2] / "fixtures" / "config"
REDACTOR = Redactor(b"network-test-key")


def run(source: Source) -> Manifest:
    options = CaptureOptions(only=frozenset({"network"}))
    return capture(source, options, REDACTOR, environ={"SOURCE_DATE_EPOCH": "0"})


def ip_json(*args: str) -> list[dict[str, Any]]:
    out = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, check=True)
    data: list[dict[str, Any]] = json.loads(out.stdout or "[]")
    return data


def need(tool: str, package: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (CI: apt-get install {package})")


@pytest.fixture
def listeners() -> Iterator[tuple[int, int]]:
    """A real TCP listener and a real bound UDP socket on 127.0.0.1, ephemeral ports."""
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(1)
        udp.bind(("127.0.0.1", 0))
        yield tcp.getsockname()[1], udp.getsockname()[1]
    finally:
        tcp.close()
        udp.close()


def test_live_listening_sockets_appear_with_their_process(listeners: tuple[int, int]) -> None:
    tcp_port, udp_port = listeners
    section = run(Source.live(environ={})).section("network")
    me = psutil.Process().name()
    tcp = section[f"listen:tcp:127.0.0.1:{tcp_port}"]
    assert tcp == {"protocol": "tcp", "address": "127.0.0.1", "port": tcp_port, "processes": [me]}
    udp = section[f"listen:udp:127.0.0.1:{udp_port}"]
    assert udp["processes"] == [me]


def test_live_listeners_agree_with_ss(listeners: tuple[int, int]) -> None:
    need("ss", "iproute2")
    section = run(Source.live(environ={})).section("network")
    out = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True, check=True).stdout
    from_ss = set()
    for line in out.splitlines():
        local = line.split()[3]
        address, _, port = local.rpartition(":")
        address = address.strip("[]").split("%")[0]
        address = {"*": "0.0.0.0"}.get(address, address)  # noqa: S104 - text, not a bind
        shown = f"[{address}]" if ":" in address else address
        from_ss.add(f"listen:tcp:{shown}:{port}")
    captured = {key for key in section if key.startswith("listen:tcp:")}
    assert from_ss
    assert from_ss == captured


def test_proc_fallback_finds_the_listener(listeners: tuple[int, int]) -> None:
    tcp_port, udp_port = listeners
    ctx = CaptureContext(
        source=Source.live(environ={}), options=CaptureOptions(), redactor=REDACTOR
    )
    found = network._listening_proc(ctx)
    assert ("tcp", "127.0.0.1", tcp_port, None) in found
    assert ("udp", "127.0.0.1", udp_port, None) in found


def test_live_interfaces_and_routes_agree_with_iproute2() -> None:
    need("ip", "iproute2")
    section = run(Source.live(environ={})).section("network")
    links = ip_json("addr", "show")
    assert {f"interface:{link['ifname']}" for link in links} == {
        key for key in section if key.startswith("interface:")
    }
    for link in links:
        component = section[f"interface:{link['ifname']}"]
        assert component["mtu"] == link["mtu"]
        assert component["state"] == ("up" if "UP" in link["flags"] else "down")
        for family, field in (("inet", "ipv4"), ("inet6", "ipv6")):
            expected = sorted(
                f"{a['local']}/{a['prefixlen']}" for a in link["addr_info"] if a["family"] == family
            )
            assert component[field] == expected, (link["ifname"], field)
        assert component["mac"].startswith("hmac-sha256:")
        assert link["address"] not in json.dumps(component)
    for flag, key in (("-4", "route:v4:default"), ("-6", "route:v6:default")):
        defaults = ip_json(flag, "route", "show", "default")
        if not defaults:
            assert key not in section
            continue
        assert section[key]["gateway"] == defaults[0].get("gateway")
        assert section[key]["interface"] == defaults[0]["dev"]


def test_live_dns_hostname_sysctls_and_ipv6() -> None:
    need("sysctl", "procps")
    section = run(Source.live(environ={})).section("network")
    assert section["hostname"]["hostname"] == os.uname().nodename
    resolv = Path("/etc/resolv.conf").read_text()
    nameservers = [
        line.split()[1] for line in resolv.splitlines() if line.startswith("nameserver ")
    ]
    assert section["dns"]["nameservers"] == nameservers
    assert section["dns"]["systemd_resolved_stub"] == ("127.0.0.53" in nameservers)
    for name in network.SYSCTLS:
        value = subprocess.run(
            ["sysctl", "-n", name], capture_output=True, text=True, check=False
        ).stdout.split()
        assert section["sysctl"][name] == (" ".join(value) if value else None), name
    assert section["ipv6"]["available"] == Path("/proc/net/if_inet6").exists()
    assert "live_only" not in section


def test_proxy_passwords_never_in_clear() -> None:
    env = {
        "HTTPS_PROXY": "http://alice:CANARY-proxy-pw@proxy.corp:3128",
        "no_proxy": "localhost,.corp",
        "PATH": "/usr/bin",
    }
    manifest = run(Source.live(environ=env))
    proxy = manifest.section("network")["proxy"]
    assert proxy["env.no_proxy"] == "localhost,.corp"
    fingerprint = REDACTOR.fingerprint("CANARY-proxy-pw")
    assert proxy["env.HTTPS_PROXY"] == "http://alice:{" + fingerprint + "}@proxy.corp:3128"
    assert "env.PATH" not in proxy
    assert "CANARY" not in dumps(manifest)


def test_rootfs_gets_only_what_files_tell(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "etc/apt/apt.conf.d").mkdir(parents=True)
    (root / "etc/hostname").write_text("web1\n")
    (root / "etc/hosts").write_text(
        "127.0.0.1\tlocalhost\n# comment\n10.0.0.5  web1.corp.example   web1  # me\n"
    )
    (root / "etc/resolv.conf").write_text(
        "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch corp.example\n"
    )
    (root / "etc/nsswitch.conf").write_text("passwd: files\nhosts:  files mdns4_minimal dns\n")
    (root / "etc/pip.conf").write_text("[global]\nproxy = http://bob:CANARY-pip-proxy@p:8080\n")
    shutil.copy(CONFIG / "apt-proxy.conf", root / "etc/apt/apt.conf.d/95proxy")
    (root / "etc/apt/apt.conf.d/95proxy.bak").write_text('Acquire::http::Proxy "http://old";\n')
    manifest = run(Source.rootfs(root))
    section = manifest.section("network")
    assert section["hostname"] == {"hostname": "web1", "fqdn": "web1.corp.example"}
    assert section["hosts"]["entries"] == [
        "10.0.0.5 web1.corp.example web1",
        "127.0.0.1 localhost",
    ]
    assert section["dns"] == {
        "nameservers": ["127.0.0.53"],
        "search": ["corp.example"],
        "domain": "",
        "options": ["edns0", "trust-ad"],
        "systemd_resolved_stub": True,
    }
    assert section["nsswitch"] == {"hosts": "files mdns4_minimal dns"}
    proxy = section["proxy"]
    assert sorted(proxy) == [
        "apt.Acquire::http::Proxy",
        "apt.Acquire::https::Proxy",
        "pip./etc/pip.conf.global.proxy",
    ]
    assert proxy["apt.Acquire::https::Proxy"] == "http://proxy.corp:3129/"
    assert "CANARY" not in dumps(manifest)
    assert section["live_only"] == {"not_applicable": network.NOT_APPLICABLE}
    assert not [key for key in section if key.startswith(("interface:", "listen:", "route:"))]
    assert "sysctl" not in section
    assert manifest.issues == []


def test_live_capture_is_stable_and_schema_valid(listeners: tuple[int, int]) -> None:
    first = dumps(run(Source.live(environ={})))
    second = dumps(run(Source.live(environ={})))
    assert first == second
    jsonschema.validate(json.loads(first), json.loads(schema_text()))


# -- two real network namespaces -----------------------------------------------------------

NETNS_PORT = 18765
DNS_A = "nameserver 10.11.0.1\nsearch a.example\n"
DNS_B = "nameserver 10.22.0.1\nnameserver 10.22.0.2\nsearch b.example corp.example\n"
# Facts of a namespace capture that may change between two captures on their own. None:
# both captures run in fresh namespaces holding only loopback, so anything else that
# differs is a bug. Listed here so that a future volatile field is added deliberately.
VOLATILE: frozenset[tuple[str, str]] = frozenset()


def _netns_available() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "`ip` is not installed (CI: apt-get install iproute2)"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"`ip netns` is unavailable: {probe.stderr.strip()}"
    return None


def _rmdir_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()


def _capture_in(namespace: str, out: Path) -> dict[str, Any]:
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}
    cmd = [sys.executable, "-m", "envpack", "capture", "-q", "--only", "network", "-o", str(out)]
    result = subprocess.run(
        ["ip", "netns", "exec", namespace, *cmd],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(out.read_text())
    return document


def _differences(a: dict[str, Any], b: dict[str, Any]) -> set[tuple[str, str]]:
    found = set()
    for key in set(a) | set(b):
        if key not in a or key not in b:
            found.add((key, "*"))
            continue
        for field in set(a[key]) | set(b[key]):
            if a[key].get(field) != b[key].get(field):
                found.add((key, field))
    return found


@pytest.mark.netns
@pytest.mark.slow
def test_two_namespaces_differ_exactly_where_they_were_made_to(tmp_path: Path) -> None:
    reason = _netns_available()
    if reason is not None:
        pytest.skip(reason)
    tag = os.getpid()
    ns_a, ns_b = f"envpack-test-a-{tag}", f"envpack-test-b-{tag}"
    listener: subprocess.Popen[str] | None = None
    with contextlib.ExitStack() as cleanup:
        if not Path("/etc/netns").exists():  # leave /etc as we found it
            cleanup.callback(_rmdir_quietly, Path("/etc/netns"))
        for namespace, mtu, dns in ((ns_a, 1500, DNS_A), (ns_b, 65536, DNS_B)):
            subprocess.run(["ip", "netns", "add", namespace], check=True)
            cleanup.callback(
                subprocess.run, ["ip", "netns", "del", namespace], check=False, capture_output=True
            )
            etc = Path("/etc/netns") / namespace
            etc.mkdir(parents=True)
            cleanup.callback(shutil.rmtree, etc, ignore_errors=True)
            (etc / "resolv.conf").write_text(dns)
            subprocess.run(["ip", "-n", namespace, "link", "set", "lo", "up"], check=True)
            subprocess.run(
                ["ip", "-n", namespace, "link", "set", "lo", "mtu", str(mtu)], check=True
            )

        script = (
            "import socket, sys, time\n"
            "s = socket.socket()\n"
            f"s.bind(('127.0.0.1', {NETNS_PORT}))\n"
            "s.listen(1)\n"
            "print('ready', flush=True)\n"
            "time.sleep(600)\n"
        )
        listener = subprocess.Popen(
            ["ip", "netns", "exec", ns_a, sys.executable, "-c", script],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert listener.stdout is not None
        cleanup.callback(listener.stdout.close)
        cleanup.callback(listener.wait, 10)
        cleanup.callback(listener.kill)
        assert listener.stdout.readline().strip() == "ready"
        listener_name = psutil.Process(listener.pid).name()

        doc_a = _capture_in(ns_a, tmp_path / "a.json")
        doc_b = _capture_in(ns_b, tmp_path / "b.json")

    # Cleaned up: neither namespace nor its /etc/netns folder is left behind.
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    assert ns_a not in names.stdout and ns_b not in names.stdout
    assert not Path(f"/etc/netns/{ns_a}").exists()

    schema = json.loads(schema_text())
    jsonschema.validate(doc_a, schema)
    jsonschema.validate(doc_b, schema)
    net_a, net_b = doc_a["network"], doc_b["network"]
    listen_key = f"listen:tcp:127.0.0.1:{NETNS_PORT}"
    expected = {
        ("interface:lo", "mtu"),
        ("dns", "nameservers"),
        ("dns", "search"),
        (listen_key, "*"),
    }
    assert _differences(net_a, net_b) - VOLATILE == expected

    assert (net_a["interface:lo"]["mtu"], net_b["interface:lo"]["mtu"]) == (1500, 65536)
    assert net_a["interface:lo"]["state"] == net_b["interface:lo"]["state"] == "up"
    assert net_a["dns"]["nameservers"] == ["10.11.0.1"]
    assert net_b["dns"]["nameservers"] == ["10.22.0.1", "10.22.0.2"]
    assert net_a["dns"]["search"] == ["a.example"]
    assert net_b["dns"]["search"] == ["b.example", "corp.example"]
    assert net_a[listen_key]["processes"] == [listener_name]
    assert listen_key not in net_b
    # Only loopback exists in a fresh namespace: the host's interfaces are not seen.
    addresses = {a for key, c in net_a.items() if key.startswith("interface:") for a in c["ipv4"]}
    assert addresses == {"127.0.0.1/8"}
