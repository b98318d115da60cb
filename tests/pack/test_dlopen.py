"""NSS modules (and the rest of dlopen's additions) against this host's real libraries.

This machine's glibc (2.36) has ``files`` and ``dns`` built in; an older glibc cannot be
run here. What glibc before 2.34 would load is decided from the libc version the manifest
records, so these tests feed that version and a real older distribution's nsswitch.conf
to the real resolver, which finds the real ``libnss_*.so.2`` files on disk.
"""

from __future__ import annotations

import os
import sys

import pytest

from envpack.pack.closure import new_resolver
from envpack.pack.dlopen import dlopen_extras, nss_services
from envpack.snapshot.source import Source

# Debian 10's /etc/nsswitch.conf as installed (glibc 2.28): `compat` for the user databases.
BUSTER_NSSWITCH = """\
# /etc/nsswitch.conf
#
# Example configuration of GNU Name Service Switch functionality.
# If you have the `glibc-doc-reference' and `info' packages installed, try:
# `info libc "Name Service Switch"' for information about this file.

passwd:         compat
group:          compat
shadow:         compat
gshadow:        files

hosts:          files dns
networks:       files

protocols:      db files
services:       db files
ethers:         db files
rpc:            db files

netgroup:       nis
"""


def test_services_are_read_in_order_without_actions_or_comments() -> None:
    assert nss_services(BUSTER_NSSWITCH) == ["compat", "files", "dns", "db", "nis"]
    rhel = "hosts: files [NOTFOUND=return] myhostname dns # resolve\n#passwd: ldap\nbad line\n"
    assert nss_services(rhel) == ["files", "myhostname", "dns"]
    assert nss_services("hosts: files [ !UNAVAIL=return ] dns\n") == ["files", "dns"]
    assert nss_services("") == []


def _libnss(service: str) -> str | None:
    for folder in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64"):
        path = f"{folder}/libnss_{service}.so.2"
        if os.path.exists(path):
            return os.path.realpath(path)
    return None


def _nss_extras(libc_version: str, nsswitch: str) -> dict[str, str]:
    source = Source.live()
    extras = dlopen_extras(
        source,
        new_resolver(source, None),
        os.path.realpath(sys.executable),
        [],
        libc_family="glibc",
        libc_version=libc_version,
        iconv_used=False,
        nsswitch=nsswitch,
    )
    return {x.what: x.path for x in extras if x.what.startswith("nss:")}


@pytest.fixture
def host_nss() -> dict[str, str]:
    found = {s: _libnss(s) for s in ("compat", "files", "dns")}
    missing = sorted(s for s, path in found.items() if path is None)
    if missing:
        pytest.skip(f"this host has no libnss_{'/'.join(missing)}.so.2 to resolve")
    return {s: str(path) for s, path in found.items()}


def test_older_glibc_gets_every_module_its_nsswitch_names(host_nss: dict[str, str]) -> None:
    extras = _nss_extras("2.28", BUSTER_NSSWITCH)
    # `db` and `nis` have no module on this host: nothing to ship, nothing invented.
    expected = {f"nss:{s}": host_nss[s] for s in ("compat", "files", "dns")}
    for service in ("db", "nis"):
        if _libnss(service) is not None:
            expected[f"nss:{service}"] = str(_libnss(service))
    assert {what: os.path.realpath(path) for what, path in extras.items()} == expected


def test_glibc_234_and_later_needs_only_modules_not_built_in(host_nss: dict[str, str]) -> None:
    assert (
        os.path.realpath(_nss_extras("2.36", BUSTER_NSSWITCH)["nss:compat"]) == host_nss["compat"]
    )
    assert set(_nss_extras("2.36", BUSTER_NSSWITCH)) == {"nss:compat"}
    assert _nss_extras("2.36", "hosts: files dns\n") == {}
    assert set(_nss_extras("2.33", "hosts: files dns\n")) == {"nss:files", "nss:dns"}


def test_musl_loads_no_nss_module() -> None:
    source = Source.live()
    extras = dlopen_extras(
        source, new_resolver(source, None), os.path.realpath(sys.executable), [],
        libc_family="musl", libc_version="1.2.4", iconv_used=False, nsswitch=BUSTER_NSSWITCH,
    )  # fmt: skip
    assert not [x for x in extras if x.what.startswith("nss:")]
