"""The layer cache through the real CLI: real venv, real capture, real builds at once.

Two ``envpack build`` processes start together on an empty cache folder and both store
the same layers; both images must be identical to a ``--no-cache`` build, every blob in
the cache must match its digest, no temporary file may be left, and a third build must
take every layer from the cache. ``envpack cache info`` / ``prune`` then report and empty
it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from realenv import REPO, make_venv, pyenv_python, run_envpack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def _env(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env.setdefault("ENVPACK_REDACT_KEY", "envpack-test-key")
    env["SOURCE_DATE_EPOCH"] = "1700000000"
    env["ENVPACK_CACHE_DIR"] = str(cache)
    return env


@pytest.fixture(scope="module")
def small_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    python = pyenv_python("3.11")
    if python is None:
        pytest.skip("CPython 3.11 is not installed (pyenv versions)")
    base = tmp_path_factory.mktemp("layercache")
    venv_python = make_venv(python, base / "venv", [])
    manifest = base / "manifest.json"
    done = run_envpack(
        "capture", "-q", "--python", str(venv_python), "-o", str(manifest),
        env=_env(base / "capture-cache"), timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return manifest


def _report(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _layout_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_two_builds_at_once_share_the_cache_safely(small_manifest: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = _env(cache)
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "envpack",
                "build",
                str(small_manifest),
                "-q",
                "-o",
                str(tmp_path / f"image{n}.oci"),
                "--report",
                str(tmp_path / f"r{n}.json"),
            ],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in (1, 2)
    ]
    for child in children:
        _, stderr = child.communicate(timeout=900)
        assert child.returncode == 0, stderr
    bare = run_envpack(
        "build", str(small_manifest), "-q", "--no-cache", "-o", str(tmp_path / "bare.oci"),
        "--report", str(tmp_path / "bare.json"), env=_env(tmp_path / "unused"), timeout=900,
    )  # fmt: skip
    assert bare.returncode == 0, bare.stderr
    assert not (tmp_path / "unused" / "layers").exists()  # --no-cache stores nothing
    digests = {_report(tmp_path / name)["image_digest"] for name in ("r1.json", "r2.json")}
    assert digests == {_report(tmp_path / "bare.json")["image_digest"]}
    assert _layout_files(tmp_path / "image1.oci") == _layout_files(tmp_path / "bare.oci")

    blobs = sorted((cache / "layers" / "blobs" / "sha256").iterdir())
    layers = _report(tmp_path / "r1.json")["layers"]
    assert {b.name for b in blobs} == {layer["digest"].split(":")[1] for layer in layers}
    for blob in blobs:
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
    assert [p.name for p in cache.rglob(".tmp-*")] == []

    third = run_envpack(
        "build", str(small_manifest), "-o", str(tmp_path / "image3.oci"),
        "--report", str(tmp_path / "r3.json"), env=env, timeout=900,
    )  # fmt: skip
    assert third.returncode == 0, third.stderr
    report = _report(tmp_path / "r3.json")
    assert [layer["cached"] for layer in report["layers"]] == [True] * len(layers)
    assert report["image_digest"] in digests
    assert f"layers from the cache: {len(layers)} of {len(layers)}" in third.stderr

    info = run_envpack("cache", "info", env=env)
    assert info.returncode == 0, info.stderr
    size = sum(p.stat().st_size for p in (cache / "layers").rglob("*") if p.is_file())
    assert info.stdout.splitlines()[0] == str(cache / "layers")
    count = len(layers)
    # The third build's record (the first two may have been too close to the capture).
    builds = len(list((cache / "layers" / "builds").glob("*.json")))
    assert builds >= 1
    summary = f"{count} layers, {count} blobs, {builds} builds, "
    assert info.stdout.splitlines()[1].startswith(summary)

    pruned = run_envpack("cache", "prune", env=env)
    assert pruned.returncode == 0, pruned.stderr
    freed = f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:.1f} kB"
    assert pruned.stdout.startswith(
        f"removed {count} layers, {count} blobs, {builds} builds, {freed} freed"
    )
    assert [p for p in (cache / "layers").rglob("*") if p.is_file()] == []
    again = run_envpack("cache", "prune", env=env)
    assert again.stdout.startswith("removed 0 layers, 0 blobs, 0 builds, 0 B freed")

    fourth = run_envpack(
        "build", str(small_manifest), "-q", "-o", str(tmp_path / "image4.oci"),
        "--report", str(tmp_path / "r4.json"), env=env, timeout=900,
    )  # fmt: skip
    assert fourth.returncode == 0, fourth.stderr
    after = _report(tmp_path / "r4.json")
    assert not any(layer["cached"] for layer in after["layers"])
    assert after["image_digest"] in digests
