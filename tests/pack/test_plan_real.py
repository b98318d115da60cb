"""plan_image against real captures: a CPython 3.11 and a 2.7 virtualenv of pyenv builds,
captured with the real ``envpack capture``, planned from this host, checked file by file,
and the 3.11 plan run under chroot."""

from __future__ import annotations

import importlib.util
import json
import os
import posixpath
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from rootfs_tree import write_tree

from envpack.errors import PackError
from envpack.manifest import Manifest, dumps, load_manifest, loads
from envpack.pack.build import BuildReport
from envpack.pack.plan import Plan, PlanOptions, plan_image
from envpack.snapshot.elf import parse_elf
from envpack.snapshot.record import record_rows, resolve_record_path
from envpack.snapshot.source import Source
from realenv import run_envpack


def _capture(python: Path, out: Path, env: dict[str, str]) -> Manifest:
    done = run_envpack("capture", "--python", str(python), "-o", str(out), "-q", env=env)
    assert done.returncode == 0, done.stderr
    return load_manifest(out)


@pytest.fixture(scope="module")
def module_env() -> dict[str, str]:
    env = dict(os.environ)
    env["ENVPACK_REDACT_KEY"] = "envpack-test-key"
    env.pop("VIRTUAL_ENV", None)
    return env


@pytest.fixture(scope="module")
def pyc_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("plan-cache")


@pytest.fixture(scope="module")
def dev_manifest(
    dev_venv: Path, tmp_path_factory: pytest.TempPathFactory, module_env: dict[str, str]
) -> Manifest:
    return _capture(dev_venv, tmp_path_factory.mktemp("dev") / "dev.json", module_env)


@pytest.fixture(scope="module")
def dev_plan(dev_manifest: Manifest, pyc_cache: Path) -> Plan:
    return plan_image(dev_manifest, Source.live(), PlanOptions(cache_dir=pyc_cache))


def _primary(manifest: Manifest) -> dict[str, object]:
    return next(c for c in manifest.section("interpreters").values() if c.get("primary"))


def _site_packages(manifest: Manifest) -> str:
    folders = _primary(manifest)["site_packages"]
    assert isinstance(folders, list)
    return next(str(f) for f in folders if str(f).endswith("site-packages"))


def _by_path(plan: Plan) -> dict[str, object]:
    return {p.entry.path: p for p in plan.files}


def _resolve_in_plan(plan: Plan, path: str) -> str:
    """Follow the plan's own symlinks (folders and the last part) as a loader would."""
    entries = {p.entry.path: p.entry for p in plan.files}
    parts = [p for p in path.split("/") if p]
    current = "/"
    hops = 0
    while parts:
        candidate = posixpath.join(current, parts.pop(0))
        entry = entries.get(candidate)
        assert entry is not None, f"{candidate} is not in the plan (resolving {path})"
        if entry.kind == "symlink":
            hops += 1
            assert hops < 40
            target = entry.linkname
            base = "/" if target.startswith("/") else current
            parts = [
                p for p in posixpath.normpath(posixpath.join(base, target)).split("/") if p
            ] + parts
            current = "/"
            continue
        current = candidate
    return current


def test_interpreter_stdlib_and_every_record_file(dev_plan: Plan, dev_manifest: Manifest) -> None:
    interp = _primary(dev_manifest)
    paths = dev_plan.paths()
    executable = str(interp["executable"])
    assert dev_plan.interpreter == executable
    real = _resolve_in_plan(dev_plan, executable)
    assert real == os.path.realpath(executable)
    base = str(interp["base_prefix"])
    dynload = f"{base}/lib/python3.11/lib-dynload"
    on_disk = {n for n in os.listdir(dynload) if n.endswith(".so")}
    assert on_disk and all(f"{dynload}/{n}" in paths for n in on_disk if "tkinter" not in n)
    assert f"{interp['prefix']}/pyvenv.cfg" in paths
    assert f"{base}/lib/python3.11/os.py" in paths
    checked = 0
    for component in dev_manifest.section("python_packages").values():
        location = str(component["location"])
        record = Path(location, str(component["metadata_dir"]), "RECORD")
        for row in record_rows(record.read_text()):
            path = resolve_record_path(location, row[0])
            if path.endswith(".pyc"):
                continue  # replaced by the plan's own bytecode
            assert _resolve_in_plan(dev_plan, path) in paths, path
            checked += 1
    assert checked >= 20
    # The base interpreter's own site-packages is not used by this virtualenv.
    assert not any(p.startswith(f"{base}/lib/python3.11/site-packages/") for p in paths)


def test_loader_with_usr_merge_links_and_library_closure(
    dev_plan: Plan, dev_manifest: Manifest
) -> None:
    interp = _primary(dev_manifest)
    info = parse_elf(Source.live(), os.path.realpath(str(interp["executable"])))
    assert info is not None and info.interpreter
    entries = {p.entry.path: p for p in dev_plan.files}
    loader_real = _resolve_in_plan(dev_plan, info.interpreter)
    assert entries[loader_real].entry.kind == "file"
    assert entries[loader_real].group == "loader"
    top = "/" + info.interpreter.strip("/").split("/")[0]
    if os.path.islink(top):  # /lib64 -> usr/lib64 on a usr-merged system: kept as a link
        assert entries[top].entry.kind == "symlink"
        assert entries[top].entry.linkname == os.readlink(top)
    origins = {p.origin for p in dev_plan.files}
    for soname in ("libc.so.6", "libssl.so.3", "libcrypto.so.3"):
        assert f"library:{soname}" in origins, soname
        lib = dev_manifest.section("libraries")[soname]
        assert _resolve_in_plan(dev_plan, str(lib["path"])) == lib["real_path"]
    assert any(p.endswith("/libgcc_s.so.1") for p in dev_plan.dlopen_added)
    libc = dev_manifest.section("os")["libc"]
    major, minor = (int(x) for x in str(libc["version"]).split(".")[:2])
    nss = [p for p in dev_plan.files if p.origin.startswith("dlopen:nss:")]
    assert bool(nss) == ((major, minor) < (2, 34))
    assert all(
        p.group.startswith("syslib:") or p.group in ("loader", "interpreter", "base", "config")
        for p in dev_plan.files
        if p.origin.startswith("library:")
        and p.entry.kind == "file"
        and "site-packages" not in p.entry.path
    )


def test_an_older_glibc_capture_ships_its_nss_modules_and_reports_them(
    dev_manifest: Manifest, pyc_cache: Path
) -> None:
    """A capture whose libc is glibc 2.31 (before NSS files/dns moved into libc) gets the
    modules the image's nsswitch.conf names, listed as dlopen additions in the report.
    This host's glibc is 2.36: the version is the manifest's, the modules are real files."""
    data = json.loads(dumps(dev_manifest))
    data["os"]["libc"]["version"] = "2.31"
    older = loads(json.dumps(data))
    plan = plan_image(older, Source.live(), PlanOptions(cache_dir=pyc_cache, bytecode=False))
    nss = {p.origin: p.entry.path for p in plan.files if p.origin.startswith("dlopen:nss:")}
    assert set(nss) == {"dlopen:nss:files", "dlopen:nss:dns"}
    for origin, path in nss.items():
        service = origin.rsplit(":", 1)[1]
        assert posixpath.basename(path) == f"libnss_{service}.so.2"
        assert os.path.exists(path)
    added = {posixpath.basename(p) for p in plan.dlopen_added}
    assert {"libnss_files.so.2", "libnss_dns.so.2"} <= added
    report = BuildReport(
        output=None, format="oci", image_digest=None, config_digest=None, manifest_digest="",
        layers=(), excluded=(), dlopen_added=plan.dlopen_added, secret_configs=(), drift=(),
        notes=(), tag=None, loaded_image_id=None, seconds=0.0,
    )  # fmt: skip
    assert "libnss_files.so.2" in " ".join(report.summary())
    assert {posixpath.basename(p) for p in report.to_json()["dlopen_added"]} >= {
        "libnss_files.so.2",
        "libnss_dns.so.2",
    }


def test_ld_so_cache_is_read_by_ldconfig(dev_plan: Plan, tmp_path: Path) -> None:
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    if not os.path.exists(ldconfig):
        pytest.skip("no ldconfig on this host to read the cache with")
    planned = _by_path(dev_plan)["/etc/ld.so.cache"]
    cache = tmp_path / "ld.so.cache"
    with planned.entry.open() as stream:  # type: ignore[attr-defined]
        cache.write_bytes(stream.read())
    out = subprocess.run(
        [ldconfig, "-p", "-C", str(cache)], capture_output=True, text=True, check=True
    ).stdout
    lines = [line.split() for line in out.splitlines()[1:]]
    listed = {words[0]: words[-1] for words in lines}
    assert "libc.so.6" in listed and "libssl.so.3" in listed
    assert "(libc6,x86-64)" in out or "(libc6" in out
    for target in listed.values():
        _resolve_in_plan(dev_plan, target)  # every entry points at a file of the image


def test_base_files(dev_plan: Plan) -> None:
    entries = _by_path(dev_plan)
    assert entries["/tmp"].entry.mode == 0o1777  # type: ignore[attr-defined]
    with entries["/etc/passwd"].entry.open() as stream:  # type: ignore[attr-defined]
        passwd = stream.read().decode()
    assert "nonroot:x:65532:65532:" in passwd
    with entries["/etc/nsswitch.conf"].entry.open() as stream:  # type: ignore[attr-defined]
        assert b"hosts: files dns" in stream.read()
    assert dev_plan.env["LANG"] == "C.UTF-8"
    assert _resolve_in_plan(dev_plan, dev_plan.env["SSL_CERT_FILE"])
    assert _resolve_in_plan(dev_plan, "/etc/os-release")
    if os.path.exists("/var/lib/dpkg/status"):
        with entries["/var/lib/dpkg/status"].entry.open() as stream:  # type: ignore[attr-defined]
            status = stream.read().decode()
        assert "Package: libc6\n" in status and "Package: libssl3\n" in status
        assert "Package: dpkg\n" not in status  # no file of dpkg is in the image
    # Captured environment variables never reach the image.
    assert set(dev_plan.env) <= {"LANG", "PATH", "SSL_CERT_FILE"}


def test_default_exclusions_are_listed_with_sizes(dev_plan: Plan, dev_manifest: Manifest) -> None:
    base = str(_primary(dev_manifest)["base_prefix"])
    stdlib = f"{base}/lib/python3.11"
    reasons = {e.reason for e in dev_plan.excluded}
    assert "standard library tests" in reasons and "idlelib (IDLE)" in reasons
    tests = [e for e in dev_plan.excluded if e.reason == "standard library tests"]
    assert all(e.path.startswith(stdlib + "/") for e in tests)
    assert sum(e.size for e in tests) > 1_000_000
    paths = dev_plan.paths()
    assert not any(p.startswith((f"{stdlib}/test/", f"{stdlib}/idlelib/")) for p in paths)
    assert f"{stdlib}/unittest/__init__.py" in paths  # only the stdlib's tests are left out


def test_pyc_are_unchecked_hash_for_311(dev_plan: Plan, dev_manifest: Manifest) -> None:
    entries = _by_path(dev_plan)
    site = _site_packages(dev_manifest)
    py = f"{site}/six/__init__.py"
    pyc = f"{site}/six/__pycache__/__init__.cpython-311.pyc"
    assert entries[pyc].group == "bytecode:site-packages"  # type: ignore[attr-defined]
    with entries[pyc].entry.open() as stream:  # type: ignore[attr-defined]
        data = stream.read()
    source = Path(py).read_bytes()
    magic = subprocess.run(
        [
            str(_primary(dev_manifest)["executable"]),
            "-c",
            "import importlib.util,sys; sys.stdout.write(importlib.util.MAGIC_NUMBER.hex())",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert data[:4].hex() == magic
    assert struct.unpack("<I", data[4:8])[0] == 0b01  # hash-based, not checked
    assert data[8:16] == importlib.util.source_hash(source)
    stale = [e for e in dev_plan.excluded if e.reason == "stale .pyc (regenerated)"]
    assert all(e.path not in entries or entries[e.path].origin == "generated" for e in stale)  # type: ignore[attr-defined]
    py_files = [
        p for p in dev_plan.files if p.entry.path.endswith(".py") and p.entry.kind == "file"
    ]
    pycs = {p.entry.path for p in dev_plan.files if p.group.startswith("bytecode:")}
    missing = [
        p.entry.path
        for p in py_files
        if posixpath.join(
            posixpath.dirname(p.entry.path),
            "__pycache__",
            posixpath.basename(p.entry.path)[:-3] + ".cpython-311.pyc",
        )
        not in pycs
    ]
    assert len(missing) <= len(dev_plan.notes) * 50, missing[:5]  # only sources that do not compile


def test_mtimes_clamped_and_owners_root(dev_plan: Plan) -> None:
    epoch = PlanOptions().source_date_epoch
    assert all(p.entry.mtime <= epoch for p in dev_plan.files)
    assert {
        (p.entry.uid, p.entry.gid) for p in dev_plan.files if p.entry.path != "/home/nonroot"
    } == {(0, 0)}


def test_plan_is_deterministic(dev_manifest: Manifest, dev_plan: Plan, pyc_cache: Path) -> None:
    again = plan_image(dev_manifest, Source.live(), PlanOptions(use_cache=False))

    def summary(plan: Plan) -> list[tuple[object, ...]]:
        rows: list[tuple[object, ...]] = []
        for p in plan.files:
            e = p.entry
            data = b""
            if e.kind == "file" and (p.group.startswith("bytecode:") or p.origin == "generated"):
                assert e.open is not None
                with e.open() as stream:
                    data = stream.read()
            rows.append((e.path, e.kind, e.mode, e.mtime, e.size, e.linkname, p.group, data))
        return rows

    assert summary(again) == summary(dev_plan)
    assert again.manifest_digest == dev_plan.manifest_digest
    assert again.excluded == dev_plan.excluded


def test_included_binary_brings_its_closure(dev_manifest: Manifest, pyc_cache: Path) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("no curl on this host to include")
    needed = parse_elf(Source.live(), os.path.realpath(curl))
    assert needed is not None
    options = PlanOptions(include=[curl], cache_dir=pyc_cache, bytecode=False)
    plan = plan_image(dev_manifest, Source.live(), options)
    assert _resolve_in_plan(plan, curl) == os.path.realpath(curl)
    origins = {p.origin for p in plan.files}
    assert {f"library:{name}" for name in needed.needed} <= origins
    groups = {p.group for p in plan.files if p.entry.path == os.path.realpath(curl)}
    assert groups and all(g.startswith("syslib:") for g in groups)  # by owning package


def test_user_who_cannot_reach_the_interpreter(dev_manifest: Manifest, pyc_cache: Path) -> None:
    real = os.path.realpath(str(_primary(dev_manifest)["executable"]))
    blocked = [p for p in Path(real).parents if p.stat().st_mode & 0o001 == 0]
    if not blocked:
        pytest.skip(f"every folder above {real} lets others through on this host")
    with pytest.raises(PackError, match=r"--user nonroot cannot reach the interpreter"):
        plan_image(
            dev_manifest,
            Source.live(),
            PlanOptions(user="nonroot", cache_dir=pyc_cache, bytecode=False),
        )
    with pytest.raises(PackError, match="unknown user"):
        plan_image(dev_manifest, Source.live(), PlanOptions(user="nobody-here"))


def test_tampered_file_is_drift(
    venv_factory: object, tmp_path: Path, module_env: dict[str, str], pyc_cache: Path
) -> None:
    python = venv_factory("3.11", ("six-1.16.0",))  # type: ignore[operator]
    manifest = _capture(python, tmp_path / "m.json", module_env)
    site = _site_packages(manifest)
    six = Path(site, "six", "__init__.py")
    original = six.read_bytes()
    try:
        six.write_bytes(original + b"\n# changed after the capture\n")
        with pytest.raises(PackError, match=r"six/__init__\.py \(sha256 differs from RECORD\)"):
            plan_image(manifest, Source.live(), PlanOptions(cache_dir=pyc_cache, bytecode=False))
        plan = plan_image(
            manifest,
            Source.live(),
            PlanOptions(cache_dir=pyc_cache, bytecode=False, allow_drift=True),
        )
        assert [d.path for d in plan.drift] == [str(six)]
    finally:
        six.write_bytes(original)


@pytest.fixture(scope="module")
def prod_plan(
    prod_venv: Path,
    tmp_path_factory: pytest.TempPathFactory,
    module_env: dict[str, str],
    pyc_cache: Path,
) -> tuple[Manifest, Plan]:
    manifest = _capture(prod_venv, tmp_path_factory.mktemp("prod") / "prod.json", module_env)
    return manifest, plan_image(manifest, Source.live(), PlanOptions(cache_dir=pyc_cache))


def test_pyc_of_27_holds_the_clamped_mtime(prod_plan: tuple[Manifest, Plan]) -> None:
    manifest, plan = prod_plan
    entries = _by_path(plan)
    site = _site_packages(manifest)
    py = entries[f"{site}/six/__init__.py"]
    pyc = entries[f"{site}/six/__init__.pyc"]
    with pyc.entry.open() as stream:  # type: ignore[attr-defined]
        data = stream.read()
    assert data[:4] == bytes.fromhex("03f30d0a")  # CPython 2.7's magic
    assert struct.unpack("<I", data[4:8])[0] == py.entry.mtime  # type: ignore[attr-defined]
    assert py.entry.mtime <= PlanOptions().source_date_epoch  # type: ignore[attr-defined]


def _chroot_check(plan: Plan, root: Path, code: str) -> subprocess.CompletedProcess[str]:
    write_tree(plan, root)
    (root / "dev").mkdir(exist_ok=True)
    os.mknod(root / "dev" / "null", 0o666 | 0o020000, os.makedev(1, 3))  # subprocess opens it
    return subprocess.run(
        ["chroot", str(root), plan.interpreter, "-c", code],
        env=dict(plan.env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


_CHECKS = """
import ssl, ctypes.util, socket, threading, sys
ssl.create_default_context()
t = threading.Thread(target=lambda: None); t.start(); t.join()
assert ctypes.util.find_library("c"), "find_library"
assert socket.getaddrinfo("localhost", 80)
for name in MODULES:
    __import__(name)
print("ok", ssl.OPENSSL_VERSION)
"""


@pytest.mark.slow
def test_planned_tree_runs_under_chroot(dev_plan: Plan, tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("chroot") is None:
        pytest.skip("chroot needs root and the chroot command")
    code = _CHECKS.replace(
        "MODULES",
        repr(
            [
                "requests",
                "urllib3",
                "attrs",
                "six",
                "certifi",
                "sqlite3",
                "decimal",
                "lzma",
                "bz2",
                "zlib",
                "hashlib",
                "json",
                "uuid",
            ]
        ),
    )
    done = _chroot_check(dev_plan, tmp_path / "root", code)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("ok OpenSSL")


@pytest.mark.slow
def test_planned_27_tree_runs_under_chroot(
    prod_plan: tuple[Manifest, Plan], tmp_path: Path
) -> None:
    if os.geteuid() != 0 or shutil.which("chroot") is None:
        pytest.skip("chroot needs root and the chroot command")
    _, plan = prod_plan
    code = _CHECKS.replace(
        "MODULES",
        repr(
            [
                "requests",
                "urllib3",
                "six",
                "certifi",
                "sqlite3",
                "decimal",
                "zlib",
                "hashlib",
                "json",
            ]
        ),
    )
    code = code.replace(
        'print("ok", ssl.OPENSSL_VERSION)', 'sys.stdout.write("ok " + ssl.OPENSSL_VERSION)'
    )
    done = _chroot_check(plan, tmp_path / "root", code)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("ok OpenSSL")
