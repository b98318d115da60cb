"""`envpack capture --image` of images `envpack build` wrote: OCI layout and docker tar.

A real CPython 3.11 virtualenv with a fixture wheel is captured live, built into an OCI
layout and a ``docker save``-format tar, loaded into a real Docker Engine, and read back
through the layout, the tar and the engine. The image's interpreter is found from its
entrypoint (a path no standard place holds), and its Python packages are the captured ones.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from realenv import make_venv, pyenv_python, run_envpack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env.setdefault("ENVPACK_REDACT_KEY", "envpack-test-key")
    env["SOURCE_DATE_EPOCH"] = "1700000000"
    return env


def _json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, wheel_dir: Path) -> dict[str, Path]:
    python = pyenv_python("3.11")
    if python is None:
        pytest.skip("CPython 3.11 is not installed (pyenv versions)")
    base = tmp_path_factory.mktemp("envpack-built")
    wheels = sorted(wheel_dir.glob("*.whl"))[:2]
    venv_python = make_venv(python, base / "venv", wheels)
    manifest = base / "source.json"
    done = run_envpack(
        "capture", "-q", "--python", str(venv_python), "-o", str(manifest),
        env=_env(), timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for fmt, out in (("oci", base / "image.oci"), ("tar", base / "image.tar")):
        done = run_envpack(
            "build", str(manifest), "-q", "--format", fmt, "-o", str(out), env=_env(), timeout=900
        )
        assert done.returncode == 0, done.stderr
    return {"manifest": manifest, "oci": base / "image.oci", "tar": base / "image.tar",
            "python": venv_python, "base": base}  # fmt: skip


def _packages(manifest: dict[str, Any]) -> dict[str, Any]:
    return {name: entry.get("version") for name, entry in manifest["python_packages"].items()}


@pytest.mark.parametrize("transport", ["oci", "docker-archive"])
def test_an_envpack_image_holds_the_captured_packages(
    built: dict[str, Path], transport: str, tmp_path: Path
) -> None:
    source = _json(built["manifest"])
    path = built["oci"] if transport == "oci" else built["tar"]
    out = tmp_path / "image.json"
    done = run_envpack(
        "capture", "-q", "--image", f"{transport}:{path}", "-o", str(out), env=_env()
    )
    assert done.returncode == 0, done.stderr
    image = _json(out)
    key = str(built["python"])
    assert list(image["interpreters"]) == [key]  # from the entrypoint, not /usr/bin/python3
    assert image["interpreters"][key]["primary"] is True
    assert image["interpreters"][key]["version"] == source["interpreters"][key]["version"]
    assert _packages(image) == _packages(source)
    assert len(_packages(image)) >= 2
    assert image["meta"]["coverage"]["network"] == "not_applicable"
    assert image["env"]["LANG"]["value"] == "C.UTF-8"


def test_an_envpack_image_loaded_into_docker_reads_the_same(
    built: dict[str, Path], docker_client: Any, tmp_path: Path
) -> None:
    with built["tar"].open("rb") as stream:
        loaded = docker_client.images.load(stream.read())
    name = loaded[0].id
    try:
        out_daemon, out_tar = tmp_path / "daemon.json", tmp_path / "tar.json"
        for ref, out in ((f"docker-daemon:{name}", out_daemon), (str(built["tar"]), out_tar)):
            done = run_envpack("capture", "-q", "--image", ref, "-o", str(out), env=_env())
            assert done.returncode == 0, done.stderr
        daemon, tar = _json(out_daemon), _json(out_tar)
        for section in ("interpreters", "python_packages", "libraries", "binaries", "os"):
            assert daemon[section] == tar[section], section
    finally:
        docker_client.images.remove(name, force=True)
