"""The os probe against this machine, against "/" read as a rootfs, and against fixture trees."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path

import pytest

from envpack.manifest import Section
from envpack.redact import Redactor
from envpack.snapshot import os_info
from envpack.snapshot.context import CaptureContext, CaptureOptions
from envpack.snapshot.os_arch import ArchProblem, elf_machine
from envpack.snapshot.os_libc import glibc_version_from_bytes
from envpack.snapshot.source import Source

ROOTFS = Path(__file__).resolve().parents[2] / "fixtures" / "rootfs"
MUSL_LOADER = Path("/lib/ld-musl-x86_64.so.1")


def _run(source: Source) -> CaptureContext:
    ctx = CaptureContext(source, CaptureOptions(), Redactor(b"test-key"))
    os_info.probe(ctx)
    return ctx


def _os(source: Source) -> Section:
    return _run(source).sections["os"]


def _live(**environ: str) -> Source:
    return Source.live(environ)


def test_live_release_matches_the_standard_library_reader() -> None:
    if not hasattr(platform, "freedesktop_os_release"):
        pytest.skip("platform.freedesktop_os_release needs Python 3.10")
    expected = platform.freedesktop_os_release()
    release = _os(_live())["release"]
    assert release["id"] == expected["ID"]
    assert release["pretty_name"] == expected["PRETTY_NAME"]
    assert release["name"] == expected["NAME"]
    assert release.get("version_id") == expected.get("VERSION_ID")
    assert release.get("version_codename") == (expected.get("VERSION_CODENAME") or None)
    assert release.get("id_like", []) == expected.get("ID_LIKE", "").split()


def test_live_architecture_kernel_and_libc() -> None:
    section = _os(_live())
    assert section["architecture"] == {"machine": platform.machine(), "source": "uname"}
    assert section["kernel"] == {"release": os.uname().release}
    libc = section["libc"]
    try:
        confstr = os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError):
        confstr = None
    if confstr is None:
        pytest.skip("not a glibc system: os.confstr has no CS_GNU_LIBC_VERSION")
    # Read from libc.so.6's bytes, it must agree with what the running C library says.
    assert libc["family"] == "glibc"
    assert confstr == f"glibc {libc['version']}"


def test_root_slash_agrees_with_the_live_capture_except_live_only_parts() -> None:
    live = _os(_live())
    offline = _os(Source.rootfs("/"))
    assert offline["release"] == live["release"]
    assert offline["libc"] == live["libc"]
    assert offline["architecture"]["machine"] == live["architecture"]["machine"]
    assert "kernel" not in offline


def test_glibc_banner_parsing() -> None:
    banner = b"\0GNU C Library (Debian GLIBC 2.36-9+deb12u4) stable release version 2.36.\n"
    assert glibc_version_from_bytes(b"xx" + banner) == "2.36"
    old = b"GNU C Library stable release version 2.17, by Roland McGrath et al.\n"
    assert glibc_version_from_bytes(old) == "2.17"
    assert glibc_version_from_bytes(b"no banner here") is None


def test_alpine_fixture() -> None:
    ctx = _run(Source.rootfs(ROOTFS / "alpine-mini"))
    section = ctx.sections["os"]
    assert section["release"] == {
        "id": "alpine",
        "name": "Alpine Linux",
        "pretty_name": "Alpine Linux v3.19",
        "version_id": "3.19.1",
    }
    assert section["architecture"] == {"machine": "x86_64", "source": "/etc/apk/arch"}
    # The fixture holds no loader: no C library can be named.
    assert section["libc"] == {"family": "unknown"}
    # A dangling /etc/localtime symlink still names the zone.
    assert section["timezone"] == {"name": "Europe/Paris", "source": "/etc/localtime"}
    assert section["locale"] == {"lang": "C.UTF-8"}
    assert "kernel" not in section
    assert ctx.issues == []


def _alpine_with_real_musl(tmp_path: Path, *, apk_db: bool) -> Path:
    if not MUSL_LOADER.is_file():
        pytest.skip("Debian's musl package is not installed (apt-get install musl)")
    root = tmp_path / "alpine"
    shutil.copytree(ROOTFS / "alpine-mini", root, symlinks=True)
    shutil.copy(MUSL_LOADER, root / "lib" / MUSL_LOADER.name)
    (root / "lib" / "libc.musl-x86_64.so.1").symlink_to(MUSL_LOADER.name)
    if not apk_db:
        (root / "lib" / "apk" / "db" / "installed").unlink()
    return root


def test_musl_version_from_the_apk_database(tmp_path: Path) -> None:
    root = _alpine_with_real_musl(tmp_path, apk_db=True)
    libc = _os(Source.rootfs(root))["libc"]
    assert libc == {"family": "musl", "version": "1.2.4", "path": "/lib/ld-musl-x86_64.so.1"}


def test_musl_version_from_the_loader_itself(tmp_path: Path) -> None:
    root = _alpine_with_real_musl(tmp_path, apk_db=False)
    libc = _os(Source.rootfs(root))["libc"]
    # The loader comes from Debian's musl package: its upstream version is the answer.
    out = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "musl"], capture_output=True, text=True, check=True
    )
    assert libc["family"] == "musl"
    assert libc["version"] == out.stdout.split("-")[0]


def test_rpm_fixture_release_and_missing_architecture() -> None:
    ctx = _run(Source.rootfs(ROOTFS / "rpm-mini"))
    section = ctx.sections["os"]
    # VERSION_CODENAME="" is as good as absent.
    assert section["release"] == {
        "id": "fedora",
        "name": "Fedora Linux",
        "pretty_name": "Fedora Linux 39 (Container Image)",
        "version_id": "39",
    }
    assert "architecture" not in section
    assert [(i.probe, i.path) for i in ctx.issues] == [("os", "/bin/sh")]
    assert section["timezone"] == {"name": "UTC", "source": "default"}


def test_architecture_from_the_elf_header_of_a_real_sh(tmp_path: Path) -> None:
    (tmp_path / "usr" / "bin").mkdir(parents=True)
    real_sh = os.path.realpath("/bin/sh")
    shutil.copy(real_sh, tmp_path / "usr" / "bin" / "dash")
    (tmp_path / "bin").symlink_to("usr/bin")
    (tmp_path / "usr" / "bin" / "sh").symlink_to("/usr/bin/dash")  # absolute: inside the root
    section = _os(Source.rootfs(tmp_path))
    assert section["architecture"] == {"machine": platform.machine(), "source": "/bin/sh"}


def test_elf_machine_of_headers() -> None:
    def header(cls: int, data: int, machine: int) -> bytes:
        em = machine.to_bytes(2, "little") if data == 1 else machine.to_bytes(2, "big")
        return b"\x7fELF" + bytes([cls, data, 1]) + bytes(9) + b"\x02\x00" + em

    assert elf_machine(header(2, 1, 62)) == "x86_64"
    assert elf_machine(header(2, 1, 183)) == "aarch64"
    assert elf_machine(header(1, 1, 3)) == "i686"
    assert elf_machine(header(2, 1, 21)) == "ppc64le"
    assert elf_machine(header(2, 2, 21)) == "ppc64"
    assert elf_machine(header(2, 2, 22)) == "s390x"
    # 32-bit variants: the interpreters section (offline) once had its own table that
    # said mipsel, riscv64 and s390x here; both sections now read this one.
    assert elf_machine(header(1, 2, 20)) == "ppc"
    assert elf_machine(header(1, 2, 22)) == "s390"
    assert elf_machine(header(1, 1, 243)) == "riscv32"
    assert elf_machine(header(1, 1, 8)) == "mips"  # uname -m says mips for mipsel too
    with pytest.raises(ArchProblem, match="unknown ELF machine"):
        elf_machine(header(2, 1, 9999))
    with pytest.raises(ArchProblem, match="not an ELF"):
        elf_machine(b"#!/bin/sh\nexec busybox sh\n")


def test_architecture_from_dpkg_names(tmp_path: Path) -> None:
    (tmp_path / "var" / "lib" / "dpkg").mkdir(parents=True)
    (tmp_path / "var" / "lib" / "dpkg" / "arch").write_text("arm64\namd64\n")
    assert _os(Source.rootfs(tmp_path))["architecture"] == {
        "machine": "aarch64",
        "source": "/var/lib/dpkg/arch",
    }


def test_timezone_sources(tmp_path: Path) -> None:
    assert _os(_live(TZ=":Europe/Berlin"))["timezone"] == {"name": "Europe/Berlin", "source": "TZ"}
    assert _os(_live(TZ="/usr/share/zoneinfo/Asia/Tokyo"))["timezone"]["name"] == "Asia/Tokyo"
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "timezone").write_text("America/New_York\n")
    assert _os(Source.rootfs(tmp_path))["timezone"] == {
        "name": "America/New_York",
        "source": "/etc/timezone",
    }
    (etc / "timezone").unlink()
    zone = Path("/usr/share/zoneinfo/Etc/UTC")
    if not zone.is_file():
        pytest.skip("tzdata is not installed")
    shutil.copy(zone, etc / "localtime")  # a copied zone file, as some images do
    import hashlib

    assert _os(Source.rootfs(tmp_path))["timezone"] == {
        "localtime_sha256": hashlib.sha256(zone.read_bytes()).hexdigest(),
        "source": "/etc/localtime",
    }


def test_locale_live_and_root(tmp_path: Path) -> None:
    assert _os(_live(LANG="de_DE.UTF-8", LC_ALL="C", HOME="/x"))["locale"] == {
        "lang": "de_DE.UTF-8",
        "lc_all": "C",
    }
    (tmp_path / "etc" / "default").mkdir(parents=True)
    (tmp_path / "etc" / "default" / "locale").write_text(
        '#  File generated by update-locale\nLANG="en_GB.UTF-8"\nLC_CTYPE=en_GB.UTF-8\n'
    )
    assert _os(Source.rootfs(tmp_path))["locale"] == {
        "lang": "en_GB.UTF-8",
        "lc_ctype": "en_GB.UTF-8",
    }


def test_unreadable_files_become_issues_without_hanging(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    os.mkfifo(etc / "os-release")
    os.mkfifo(etc / "timezone")
    (etc / "locale.conf").mkdir()  # a folder where a file should be
    ctx = _run(Source.rootfs(tmp_path))
    paths = sorted(i.path for i in ctx.issues)
    assert "/etc/os-release" in paths
    assert "/etc/timezone" in paths
    assert "/etc/locale.conf" in paths
    assert ctx.sections["os"]["timezone"] == {"name": "UTC", "source": "default"}


def test_multiarch_root_describes_the_native_libc(tmp_path: Path) -> None:
    real = Path(os.path.realpath("/lib/x86_64-linux-gnu/libc.so.6"))
    if platform.machine() != "x86_64" or not real.is_file():
        pytest.skip("needs an x86_64 Debian-style glibc")
    for triplet in ("i386-linux-gnu", "x86_64-linux-gnu"):
        folder = tmp_path / "usr" / "lib" / triplet
        folder.mkdir(parents=True)
        shutil.copy(real, folder / "libc.so.6")
    (tmp_path / "var" / "lib" / "dpkg").mkdir(parents=True)
    (tmp_path / "var" / "lib" / "dpkg" / "arch").write_text("amd64\ni386\n")
    libc = _os(Source.rootfs(tmp_path))["libc"]
    assert libc["path"] == "/usr/lib/x86_64-linux-gnu/libc.so.6"
    assert libc["family"] == "glibc"
    assert f"glibc {libc['version']}" == os.confstr("CS_GNU_LIBC_VERSION")
