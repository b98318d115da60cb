"""Probe: the network stack → section ``network``, one flat key per fact.

Keys and what each component holds:

- ``hostname``: ``hostname``, ``fqdn`` (the FQDN comes from /etc/hosts only: a capture
  never sends a DNS query, so it cannot hang on a dead resolver or vary with one).
- ``interface:<name>``: ``state`` (up/down), ``mtu``, ``mac``, ``ipv4`` and ``ipv6``
  (sorted ``addr/prefix``). The MAC is a hardware identifier that differs on every host, so
  it is recorded as a keyed fingerprint: a diff still sees a changed NIC, a shared
  manifest does not reveal the address.
- ``route:v4:default`` / ``route:v6:default``: the preferred default route (lowest
  metric) with ``gateway``, ``interface``, ``metric`` and ``alternatives`` (other default
  routes). Other routes: ``route:v4:<dest>/<len>@<interface>``. Kernel-made local,
  multicast and reject routes are left out.
- ``dns``: ``nameservers``, ``search``, ``options``, ``domain`` and
  ``systemd_resolved_stub`` (a nameserver 127.0.0.53) from /etc/resolv.conf.
- ``hosts``: ``entries``, sorted ``"ip name name"`` lines of /etc/hosts.
- ``nsswitch``: ``hosts``, the hosts line of /etc/nsswitch.conf.
- ``proxy``: ``env.<NAME>`` (HTTP_PROXY, HTTPS_PROXY, NO_PROXY, ALL_PROXY, either case,
  and PIP_PROXY), ``pip.<file>.<section>.proxy`` and ``apt.<Acquire::…::Proxy>``; secrets
  hidden by the same policy as the env section (one secret, one fingerprint, anywhere).
- ``listen:tcp:<addr>:<port>`` / ``listen:udp:…``: ``protocol``, ``address``, ``port``,
  ``processes`` (names, where visible). IPv6 addresses are bracketed. Established
  connections and connected UDP sockets change by the second and are left out.
- ``ipv6``: ``available`` (the kernel gives AF_INET6 sockets and IPv6 is not disabled).
- ``sysctl``: the behaviour-changing values under /proc/sys (ip_forward, somaxconn, TCP
  keepalive, disable_ipv6), as strings.

Under ``--root`` only files can answer: ``hostname`` (from /etc/hostname), ``dns``,
``hosts``, ``nsswitch`` and the file part of ``proxy``. The live-only facts are replaced
by one key, ``live_only``, holding ``{"not_applicable": "offline capture of a rootfs"}``.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable

import psutil

from envpack.manifest import Component
from envpack.snapshot.config_files import pip_config_files
from envpack.snapshot.config_parsers import ConfigParseError, parse_apt_conf, parse_ini
from envpack.snapshot.context import CaptureContext
from envpack.snapshot.source import SourceReadError

__all__ = ["NOT_APPLICABLE", "SYSCTLS", "probe"]

SECTION = "network"
NOT_APPLICABLE = "offline capture of a rootfs"

SYSCTLS = (
    "net.ipv4.ip_forward",
    "net.core.somaxconn",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv6.conf.all.disable_ipv6",
)
_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "FTP_PROXY")
_SMALL = 1024 * 1024  # config files read here are tiny; a bigger one is read in part
_STUB_RESOLVER = "127.0.0.53"

# /proc/net/route and ipv6_route flags (linux/route.h, linux/ipv6_route.h).
_RTF_REJECT = 0x0200
_RTF_CACHE = 0x01000000
_RTF_LOCAL = 0x80000000
# /proc/net/tcp states: 0A is LISTEN; UDP sockets not connected show 07 (CLOSE).
_TCP_LISTEN = "0A"
_UDP_UNCONNECTED = "07"


def probe(ctx: CaptureContext) -> None:
    """Record the network facts of the live host, or the file-based ones of a rootfs."""
    section: dict[str, Component] = {}
    hosts = _hosts_entries(ctx)
    section["hostname"] = _hostname(ctx, hosts)
    section["dns"] = _dns(ctx)
    section["hosts"] = {"entries": hosts}
    section["nsswitch"] = _nsswitch(ctx)
    section["proxy"] = _proxy(ctx)
    if ctx.source.is_live:
        section.update(_interfaces(ctx))
        section.update(_routes(ctx))
        section.update(_listening(ctx))
        section["ipv6"] = {"available": _ipv6_available()}
        section["sysctl"] = _sysctls(ctx)
    else:
        section["live_only"] = {"not_applicable": NOT_APPLICABLE}
    ctx.sections[SECTION] = section


def _read(ctx: CaptureContext, inner: str) -> str | None:
    """A small text file through the source; an issue (and ``None``) when unreadable."""
    try:
        if ctx.source.lstat(inner) is None:
            return None
        return ctx.source.read_text(inner, limit=_SMALL)
    except SourceReadError as err:
        ctx.issue(SECTION, inner, str(err))
        return None


def _lines(text: str | None) -> Iterable[list[str]]:
    for raw in (text or "").splitlines():
        words = re.split(r"[#;]", raw, maxsplit=1)[0].split()
        if words:
            yield words


# -- files ---------------------------------------------------------------------------------


def _hosts_entries(ctx: CaptureContext) -> list[str]:
    return sorted({" ".join(words) for words in _lines(_read(ctx, "/etc/hosts"))})


def _hostname(ctx: CaptureContext, hosts: list[str]) -> Component:
    try:
        name = ctx.source.hostname()
    except SourceReadError as err:
        ctx.issue(SECTION, "/etc/hostname", str(err))
        name = ""
    return {"hostname": name, "fqdn": _fqdn(name, hosts)}


def _fqdn(name: str, hosts: list[str]) -> str:
    """The first name of the hosts line that lists ``name`` (what getfqdn finds there)."""
    short = name.split(".", maxsplit=1)[0]
    for line in hosts:
        names = line.split()[1:]
        if name in names or short in names:
            dotted = [n for n in names if "." in n and n.split(".")[0] == short]
            return dotted[0] if dotted else names[0]
    return name


def _dns(ctx: CaptureContext) -> Component:
    nameservers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    domain = ""
    for words in _lines(_read(ctx, "/etc/resolv.conf")):
        keyword, args = words[0], words[1:]
        if keyword == "nameserver" and args:
            nameservers.append(args[0])
        elif keyword == "search":
            search, domain = args, ""  # the last of search/domain wins (resolv.conf(5))
        elif keyword == "domain" and args:
            domain, search = args[0], []
        elif keyword == "options":
            options.extend(args)
    # Order matters for all three: the resolver tries them in turn.
    return {
        "nameservers": nameservers,
        "search": search,
        "domain": domain,
        "options": options,
        "systemd_resolved_stub": _STUB_RESOLVER in nameservers,
    }


def _nsswitch(ctx: CaptureContext) -> Component:
    for words in _lines(_read(ctx, "/etc/nsswitch.conf")):
        if words[0] == "hosts:":
            return {"hosts": " ".join(words[1:])}
    return {"hosts": None}


def _proxy(ctx: CaptureContext) -> Component:
    out: Component = {}
    redactor = ctx.redactor
    for name, value in ctx.source.environ.items():
        upper = name.upper()
        if upper in _PROXY_VARIABLES or upper == "PIP_PROXY":
            # The same policy as the env section, so what env hides is hidden here too.
            out[f"env.{name}"] = redactor.value(name, value)[0]
    for inner in pip_config_files(ctx.source):
        text = _read(ctx, inner)
        if text is None:
            continue
        try:
            keys = parse_ini(text)
        except ConfigParseError as err:
            ctx.issue(SECTION, inner, str(err))
            continue
        for key, value in keys.items():
            if key.rsplit(".", 1)[-1] == "proxy":
                out[f"pip.{inner}.{key}"] = redactor.value(key, value)[0]
    for inner in _apt_files(ctx):
        text = _read(ctx, inner)
        if text is None:
            continue
        try:
            keys = parse_apt_conf(text)
        except ConfigParseError as err:
            ctx.issue(SECTION, inner, str(err))
            continue
        for key, value in keys.items():
            parts = key.lower().split("::")
            if len(parts) >= 3 and parts[0] == "acquire" and parts[2] == "proxy":
                out[f"apt.{key}"] = redactor.value(key, value)[0]
    return dict(sorted(out.items()))


def _apt_files(ctx: CaptureContext) -> list[str]:
    try:
        names = ctx.source.listdir("/etc/apt/apt.conf.d")
    except SourceReadError as err:
        ctx.issue(SECTION, "/etc/apt/apt.conf.d", str(err))
        names = []
    # apt reads only names made of these characters (apt.conf(5)); others are backups.
    parts = [f"/etc/apt/apt.conf.d/{n}" for n in names if re.fullmatch(r"[\w.\-]+", n)]
    return ["/etc/apt/apt.conf", *[p for p in parts if not p.endswith((".bak", "~"))]]


# -- live only -----------------------------------------------------------------------------


def _interfaces(ctx: CaptureContext) -> dict[str, Component]:
    try:
        stats = psutil.net_if_stats()
        addrs = psutil.net_if_addrs()
    except (psutil.Error, OSError) as err:
        ctx.issue(SECTION, "interfaces", f"cannot list network interfaces: {err}")
        return {}
    out: dict[str, Component] = {}
    for name in sorted(set(stats) | set(addrs)):
        ipv4: list[str] = []
        ipv6: list[str] = []
        mac: str | None = None
        for addr in addrs.get(name, []):
            if addr.family == socket.AF_INET:
                ipv4.append(_with_prefix(addr.address, addr.netmask))
            elif addr.family == socket.AF_INET6:
                ipv6.append(_with_prefix(addr.address.split("%")[0], addr.netmask))
            elif addr.family == psutil.AF_LINK and addr.address:
                mac = ctx.redactor.fingerprint(addr.address.lower())
        stat = stats.get(name)
        out[f"interface:{name}"] = {
            "state": None if stat is None else ("up" if stat.isup else "down"),
            "mtu": None if stat is None else stat.mtu,
            "mac": mac,
            "ipv4": sorted(ipv4),
            "ipv6": sorted(ipv6),
        }
    return out


def _with_prefix(address: str, netmask: str | None) -> str:
    if not netmask:
        return address
    try:
        # Count the mask's bits: ip_network() refuses an IPv6 mask written as an address.
        prefix = bin(int(ipaddress.ip_address(netmask))).count("1")
    except ValueError:
        return address
    return f"{address}/{prefix}"


def _proc_lines(ctx: CaptureContext, path: str) -> list[list[str]]:
    try:
        with open(path, encoding="ascii", errors="replace") as stream:
            return [line.split() for line in stream.read().splitlines() if line.strip()]
    except FileNotFoundError:
        return []
    except OSError as err:
        ctx.issue(SECTION, path, err.strerror or str(err))
        return []


def _routes(ctx: CaptureContext) -> dict[str, Component]:
    routes: list[tuple[str, str, str | None, str, int]] = []  # (family, dest, gw, dev, metric)
    for fields in _proc_lines(ctx, "/proc/net/route")[1:]:
        if len(fields) < 8:
            continue
        dev, dest, gateway, flags, metric, mask = (
            fields[0],
            fields[1],
            fields[2],
            fields[3],
            fields[6],
            fields[7],
        )
        if int(flags, 16) & _RTF_REJECT:
            continue
        network = ipaddress.IPv4Network((_le_ipv4(dest), str(_le_ipv4(mask))), strict=False)
        gw = None if int(gateway, 16) == 0 else str(_le_ipv4(gateway))
        routes.append(("v4", str(network), gw, dev, int(metric, 16)))
    for fields in _proc_lines(ctx, "/proc/net/ipv6_route"):
        if len(fields) < 10:
            continue
        dest, plen, gateway, metric, flags, dev = (
            fields[0],
            fields[1],
            fields[4],
            fields[5],
            fields[8],
            fields[9],
        )
        bits = int(flags, 16)
        if bits & (_RTF_REJECT | _RTF_CACHE | _RTF_LOCAL):
            continue
        network6 = ipaddress.IPv6Network((int(dest, 16), int(plen, 16)), strict=False)
        if network6.is_multicast:
            continue
        gw6 = None if int(gateway, 16) == 0 else str(ipaddress.IPv6Address(int(gateway, 16)))
        routes.append(("v6", str(network6), gw6, dev, int(metric, 16)))
    return _route_components(routes)


def _le_ipv4(hex_text: str) -> ipaddress.IPv4Address:
    """/proc/net/route writes addresses as little-endian hex words."""
    return ipaddress.IPv4Address(int(hex_text, 16).to_bytes(4, "little"))


def _route_components(
    routes: list[tuple[str, str, str | None, str, int]],
) -> dict[str, Component]:
    out: dict[str, Component] = {}
    for family in ("v4", "v6"):
        defaults = sorted(
            (metric, dev, gw)
            for fam, dest, gw, dev, metric in routes
            if fam == family and dest in ("0.0.0.0/0", "::/0")
        )
        if defaults:
            metric, dev, gw = defaults[0]
            out[f"route:{family}:default"] = {
                "gateway": gw,
                "interface": dev,
                "metric": metric,
                "alternatives": [f"via {g or '-'} dev {d} metric {m}" for m, d, g in defaults[1:]],
            }
        for fam, dest, gw, dev, metric in sorted(routes):
            if fam != family or dest in ("0.0.0.0/0", "::/0"):
                continue
            key = f"route:{family}:{dest}@{dev}"
            if key not in out or metric < out[key]["metric"]:
                out[key] = {"gateway": gw, "interface": dev, "metric": metric}
    return out


def _listening(ctx: CaptureContext) -> dict[str, Component]:
    try:
        sockets = _listening_psutil()
    except (psutil.Error, OSError):  # AccessDenied without root in some containers
        ctx.issue(SECTION, "/proc", "listening sockets read without owner processes")
        sockets = _listening_proc(ctx)
    out: dict[str, Component] = {}
    for protocol, address, port, name in sockets:
        shown = f"[{address}]" if ":" in address else address
        key = f"listen:{protocol}:{shown}:{port}"
        component = out.setdefault(
            key, {"protocol": protocol, "address": address, "port": port, "processes": []}
        )
        if name and name not in component["processes"]:
            component["processes"] = sorted([*component["processes"], name])
    return dict(sorted(out.items()))


def _listening_psutil() -> list[tuple[str, str, int, str | None]]:
    found: list[tuple[str, str, int, str | None]] = []
    names: dict[int, str | None] = {}
    for conn in psutil.net_connections(kind="inet"):
        if not conn.laddr:
            continue
        if conn.type == socket.SOCK_STREAM:
            if conn.status != psutil.CONN_LISTEN:
                continue
            protocol = "tcp"
        elif conn.type == socket.SOCK_DGRAM:
            if conn.raddr:  # connected: an outgoing client socket on an ephemeral port
                continue
            protocol = "udp"
        else:
            continue
        name = None
        if conn.pid is not None:
            if conn.pid not in names:
                names[conn.pid] = _process_name(conn.pid)
            name = names[conn.pid]
        found.append((protocol, conn.laddr.ip, conn.laddr.port, name))
    return found


def _process_name(pid: int) -> str | None:
    try:
        return psutil.Process(pid).name()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def _listening_proc(ctx: CaptureContext) -> list[tuple[str, str, int, str | None]]:
    """Fallback without process names: parse /proc/net/{tcp,udp}{,6} ourselves."""
    found: list[tuple[str, str, int, str | None]] = []
    for protocol, wanted in (("tcp", _TCP_LISTEN), ("udp", _UDP_UNCONNECTED)):
        for suffix in ("", "6"):
            for fields in _proc_lines(ctx, f"/proc/net/{protocol}{suffix}")[1:]:
                if len(fields) < 4 or fields[3] != wanted:
                    continue
                local, remote = fields[1], fields[2]
                if protocol == "udp" and int(remote.split(":")[1], 16) != 0:
                    continue
                address, port = _proc_address(local)
                found.append((protocol, address, port, None))
    return found


def _proc_address(text: str) -> tuple[str, int]:
    """``0100007F:1F90`` → ``("127.0.0.1", 8080)``; IPv6 words are little-endian too."""
    hex_addr, hex_port = text.split(":")
    raw = bytes.fromhex(hex_addr)
    swapped = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    address = ipaddress.ip_address(swapped)
    return str(address), int(hex_port, 16)


def _ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM):
            pass
    except OSError:
        return False
    try:
        with open("/proc/sys/net/ipv6/conf/all/disable_ipv6", encoding="ascii") as stream:
            return stream.read().strip() != "1"
    except OSError:
        return True


def _sysctls(ctx: CaptureContext) -> Component:
    out: Component = {}
    for name in SYSCTLS:
        path = "/proc/sys/" + name.replace(".", "/")
        try:
            with open(path, encoding="ascii") as stream:
                out[name] = " ".join(stream.read().split())
        except FileNotFoundError:
            out[name] = None
        except OSError as err:
            ctx.issue(SECTION, path, err.strerror or str(err))
            out[name] = None
    return out
