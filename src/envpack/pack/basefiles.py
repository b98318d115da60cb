"""The small base every image needs: users, /tmp, name service, CA bundle, zone, release.

Generated: ``/etc/passwd`` and ``/etc/group`` (root and ``nonroot`` 65532, as distroless),
``/tmp`` (1777), ``/home/nonroot``, ``/etc/nsswitch.conf`` (``files dns``) and
``/etc/hosts``. Copied from the source: ``/etc/services`` (a minimal one is written when
the source has none), the CA bundle the capture recorded, the captured time zone's
zoneinfo file with ``/etc/localtime``, and ``/etc/os-release``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the constants here are read by verify, which needs no file set
    from envpack.pack.fileset import FileSet

__all__ = ["CA_BUNDLES", "GENERATED", "NONROOT_UID", "NSSWITCH", "add_base_files"]

NONROOT_UID = 65532
CA_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
)
_PASSWD = (
    "root:x:0:0:root:/root:/sbin/nologin\n"
    f"nonroot:x:{NONROOT_UID}:{NONROOT_UID}:nonroot:/home/nonroot:/sbin/nologin\n"
)
_GROUP = f"root:x:0:\nnonroot:x:{NONROOT_UID}:\n"
NSSWITCH = (
    "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\n"
    "protocols: files\nservices: files\nethers: files\nrpc: files\n"
)
"""The image's ``/etc/nsswitch.conf``: its services decide the NSS modules shipped."""
_HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
_SERVICES = (
    "ftp\t\t21/tcp\nssh\t\t22/tcp\nsmtp\t\t25/tcp\ndomain\t\t53/tcp\ndomain\t\t53/udp\n"
    "http\t\t80/tcp\t\twww\nntp\t\t123/udp\nhttps\t\t443/tcp\npostgresql\t5432/tcp\n"
    "mysql\t\t3306/tcp\nredis\t\t6379/tcp\n"
)
_ZONEINFO = "/usr/share/zoneinfo"
GENERATED = frozenset({"/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/hosts"})
"""Files the base writes itself: a captured copy of them is replaced (and reported)."""


def add_base_files(
    files: FileSet, os_section: Mapping[str, Any], config_paths: set[str]
) -> dict[str, str]:
    """Add the base; return the environment it implies (``SSL_CERT_FILE``)."""
    group = "base"
    files.add_generated("/etc/passwd", _PASSWD.encode(), group, replace_existing=True)
    files.add_generated("/etc/group", _GROUP.encode(), group, replace_existing=True)
    files.add_generated("/etc/nsswitch.conf", NSSWITCH.encode(), group, replace_existing=True)
    files.add_generated("/etc/hosts", _HOSTS.encode(), group, replace_existing=True)
    files.add_generated_dir("/tmp", group, mode=0o1777)  # noqa: S108 (the image's /tmp)
    files.add_generated_dir("/home/nonroot", group, mode=0o700, uid=NONROOT_UID)
    if not files.add_path("/etc/services", group, "generated"):
        files.add_generated("/etc/services", _SERVICES.encode(), group)
    files.add_path("/etc/os-release", group, "generated")
    env: dict[str, str] = {}
    bundles = [path for path in CA_BUNDLES if path in config_paths] or list(CA_BUNDLES)
    for path in bundles:
        if files.add_path(path, group, "generated"):
            env["SSL_CERT_FILE"] = path
            break
    _add_timezone(files, os_section)
    return env


def _add_timezone(files: FileSet, os_section: Mapping[str, Any]) -> None:
    zone = os_section.get("timezone") or {}
    name = zone.get("name") if isinstance(zone, dict) else None
    if not isinstance(name, str) or not name or ".." in name.split("/"):
        name = "UTC"
    zone_file = f"{_ZONEINFO}/{name}"
    shipped = files.add_path(zone_file, "base", "generated")
    if not files.add_path("/etc/localtime", "base", "generated") and shipped:
        files.add_generated_symlink("/etc/localtime", zone_file, "base")
