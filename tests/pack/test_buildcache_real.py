"""The build cache on a real venv: an unchanged rebuild plans nothing, any change misses.

A real CPython 3.11 virtualenv with a real wheel, captured by the real CLI, built in this
process (so the planner's calls can be counted) on the live host. Every kind of change
(a ``.py`` edited with its size and mtime restored, a file added to or removed from
site-packages, a chmod, a symlink retargeted, the manifest, an option) must make the next
build plan again and give the digest of a build that had no record to reuse.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import envpack.pack.build as build_module
from envpack.pack import buildcache
from envpack.pack.build import BuildOptions, BuildReport, build
from envpack.pack.plan import plan_image
from realenv import build_wheel, make_venv, pyenv_python, run_envpack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

EPOCH = 1700000000


@dataclass
class World:
    venv: Path
    site_packages: Path
    app: Path
    manifest: Path
    cache: Path
    reference: Path
    """Another cache folder: its build records are removed before each use."""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    python = pyenv_python("3.11")
    if python is None:
        pytest.skip("CPython 3.11 is not installed (pyenv versions)")
    base = tmp_path_factory.mktemp("buildcache")
    wheel = build_wheel("six-1.16.0", base / "wheels")
    venv_python = make_venv(python, base / "venv", [wheel])
    site = next((base / "venv" / "lib").glob("python3*/site-packages"))
    app = base / "app"
    app.mkdir()
    (app / "app.py").write_text("print('hello from the app')\n")
    (app / "a.txt").write_text("first target\n")
    (app / "b.txt").write_text("second target\n")
    (app / "current").symlink_to("a.txt")
    manifest = base / "manifest.json"
    env = dict(os.environ, ENVPACK_CACHE_DIR=str(base / "capture-cache"))
    env.setdefault("ENVPACK_REDACT_KEY", "envpack-test-key")
    done = run_envpack(
        "capture", "-q", "--python", str(venv_python), "-o", str(manifest), env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr
    return World(base / "venv", site, app, manifest, base / "cache", base / "reference")


@dataclass
class Counted:
    plans: int = 0


@pytest.fixture
def plans(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counted]:
    """How many times a build planned (walked the sources, compiled bytecode)."""
    counted = Counted()
    real = plan_image

    def counting(*args: object, **kwargs: object) -> object:
        counted.plans += 1
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(build_module, "plan_image", counting)  # what build() calls
    yield counted


def _build(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    out: Path,
    *,
    cache: Path | None = None,
    use_cache: bool = True,
    env: dict[str, str] | None = None,
    fmt: str = "oci",
) -> BuildReport:
    monkeypatch.setenv("ENVPACK_CACHE_DIR", str(cache or world.cache))
    options = BuildOptions(
        output=out,
        format=fmt,  # type: ignore[arg-type]
        apps=((str(world.app), "/srv/app"),),
        env=env or {},
        force=True,
        use_cache=use_cache,
        source_date_epoch=EPOCH,
    )
    return build(world.manifest, options)


def _reference(world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **kw: object) -> str:
    """The digest of a build that finds no build record (layers and pycs may be cached)."""
    shutil.rmtree(world.reference / "layers" / "builds", ignore_errors=True)
    report = _build(world, monkeypatch, tmp_path / "reference.oci", cache=world.reference, **kw)  # type: ignore[arg-type]
    assert report.image_digest is not None
    return report.image_digest


def _settle(world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, plans: Counted) -> str:
    """Build until a record is stored for the present files; the digest."""
    time.sleep(buildcache.RACY_SECONDS + 0.2)  # the files are older than the racy window
    first = _build(world, monkeypatch, tmp_path / "settle.oci")
    before = plans.plans
    again = _build(world, monkeypatch, tmp_path / "settle.oci")
    assert plans.plans == before, "an unchanged rebuild planned again"
    assert again.image_digest == first.image_digest
    assert first.image_digest is not None
    return first.image_digest


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_unchanged_rebuild_plans_nothing_and_writes_the_same_bytes(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, plans: Counted
) -> None:
    digest = _settle(world, monkeypatch, tmp_path, plans)
    hits = buildcache.stats.hits
    planned = plans.plans
    report = _build(world, monkeypatch, tmp_path / "rebuilt.oci")
    assert plans.plans == planned
    assert buildcache.stats.hits == hits + 1
    assert report.image_digest == digest
    assert all(layer.cached for layer in report.layers)
    assert report.build_cached
    cold = _build(world, monkeypatch, tmp_path / "cold.oci", use_cache=False)
    assert cold.image_digest == digest
    assert _files(tmp_path / "rebuilt.oci") == _files(tmp_path / "cold.oci")
    # The report says what the cold one says, but for the cache and the time.
    assert [(x.group, x.files, x.digest) for x in report.layers] == [
        (x.group, x.files, x.digest) for x in cold.layers
    ]
    assert (report.excluded, report.notes, report.env) == (cold.excluded, cold.notes, cold.env)
    # A tar of the same image comes from the same record.
    tar = _build(world, monkeypatch, tmp_path / "rebuilt.tar", fmt="tar")
    assert plans.plans == planned + 1  # only the --no-cache build planned
    assert tar.image_digest == digest


def _edit_keeping_size_and_mtime(world: World) -> None:
    app = world.app / "app.py"
    st = app.stat()
    text = app.read_text()
    app.write_text(
        text.replace("hello", "jello") if "hello" in text else text.replace("jello", "hello")
    )
    os.utime(app, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = app.stat()
    assert (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns)


def _add_to_site_packages(world: World) -> None:
    (world.site_packages / "envpack_cache_added.py").write_text("ADDED = 1\n")


def _setup_removal(world: World) -> None:
    (world.site_packages / "envpack_cache_removed.py").write_text("REMOVED = 1\n")


def _remove_from_site_packages(world: World) -> None:
    (world.site_packages / "envpack_cache_removed.py").unlink()


def _chmod(world: World) -> None:
    app = world.app / "a.txt"
    app.chmod(0o600 if app.stat().st_mode & 0o044 else 0o644)


def _retarget(world: World) -> None:
    link = world.app / "current"
    target = "b.txt" if os.readlink(link) == "a.txt" else "a.txt"
    link.unlink()
    link.symlink_to(target)


def _change_manifest(world: World) -> None:
    data = json.loads(world.manifest.read_bytes())
    data["meta"]["label"] = f"changed {time.monotonic_ns()}"
    world.manifest.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


CHANGES: dict[str, tuple[Callable[[World], None] | None, Callable[[World], None]]] = {
    "py-edited-size-and-mtime-kept": (None, _edit_keeping_size_and_mtime),
    "file-added-to-site-packages": (None, _add_to_site_packages),
    "file-removed-from-site-packages": (_setup_removal, _remove_from_site_packages),
    "chmod": (None, _chmod),
    "symlink-retargeted": (None, _retarget),
    "manifest-changed": (None, _change_manifest),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_change_plans_again_and_gives_the_cold_digest(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, plans: Counted, change: str
) -> None:
    setup, apply = CHANGES[change]
    if setup is not None:
        setup(world)
    before = _settle(world, monkeypatch, tmp_path, plans)
    planned = plans.plans
    apply(world)
    report = _build(world, monkeypatch, tmp_path / "changed.oci")
    assert plans.plans == planned + 1, "the changed input was not planned again"
    assert not report.build_cached
    assert report.image_digest != before
    assert report.image_digest == _reference(world, monkeypatch, tmp_path)


def test_an_option_changed_misses(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, plans: Counted
) -> None:
    before = _settle(world, monkeypatch, tmp_path, plans)
    planned = plans.plans
    report = _build(world, monkeypatch, tmp_path / "env.oci", env={"CACHE_TEST": "1"})
    assert plans.plans == planned + 1
    assert report.image_digest != before
    assert report.image_digest == _reference(world, monkeypatch, tmp_path, env={"CACHE_TEST": "1"})
    assert ("CACHE_TEST", "1") in report.env


def test_a_file_changed_just_before_the_build_stores_no_record(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, plans: Counted
) -> None:
    _settle(world, monkeypatch, tmp_path, plans)
    (world.app / "racy.txt").write_text(f"{time.monotonic_ns()}\n")
    racy = buildcache.stats.racy
    first = _build(world, monkeypatch, tmp_path / "racy.oci")
    assert buildcache.stats.racy == racy + 1
    planned = plans.plans
    second = _build(world, monkeypatch, tmp_path / "racy.oci")
    assert plans.plans == planned + 1  # nothing was stored: planned again
    assert second.image_digest == first.image_digest


def _records(world: World) -> list[tuple[str, int, int, bytes]]:
    """Each build record's name, inode, mtime and bytes: a record stored again under its
    own name (the same key) is renamed into place, a new file with a new inode and mtime."""
    records = []
    for path in sorted((world.cache / "layers" / "builds").iterdir()):
        st = path.stat()
        records.append((path.name, st.st_ino, st.st_mtime_ns, path.read_bytes()))
    return records


def test_no_cache_neither_reads_nor_stores_records(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, plans: Counted
) -> None:
    _settle(world, monkeypatch, tmp_path, plans)
    records = _records(world)
    assert records  # one a wrongly storing build would overwrite
    planned = plans.plans
    _build(world, monkeypatch, tmp_path / "bare.oci", use_cache=False)
    assert plans.plans == planned + 1
    assert _records(world) == records


def test_a_damaged_blob_falls_back_to_a_full_build(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, plans: Counted
) -> None:
    digest = _settle(world, monkeypatch, tmp_path, plans)
    blobs = sorted((world.cache / "layers" / "blobs" / "sha256").iterdir())
    victim = max(blobs, key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    planned = plans.plans
    report = _build(world, monkeypatch, tmp_path / "repaired.oci")
    assert plans.plans == planned + 1
    assert report.image_digest == digest
