"""plan_image refuses bad input with one line: no interpreter, wrong root, escaping
symlink, a user who cannot reach the interpreter. Trees are real folders (``--root``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from envpack.errors import PackError
from envpack.manifest import Manifest, Meta
from envpack.pack.plan import PlanOptions, plan_image
from envpack.snapshot.source import Source

_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
_RELEASE_JSON = {
    "pretty_name": "Debian GNU/Linux 12 (bookworm)",
    "id": "debian",
    "version_id": "12",
}


def _manifest(interpreters: dict[str, Any]) -> Manifest:
    meta = Meta("0.1.0", "2026-01-01T00:00:00Z", "root", "tree", "tree")
    sections = {
        "interpreters": interpreters,
        "os": {"release": _RELEASE_JSON, "libc": {"family": "glibc", "version": "2.36"}},
    }
    return Manifest(meta=meta, sections=sections)


def _interpreter(path: str) -> dict[str, Any]:
    return {
        path: {
            "executable": path,
            "real_executable": path,
            "primary": True,
            "version": "3.11.7",
            "prefix": os.path.dirname(os.path.dirname(path)),
            "base_prefix": os.path.dirname(os.path.dirname(path)),
            "implementation": "cpython",
        }
    }


def _root(tmp_path: Path, release: str = _RELEASE) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text(release)
    (root / "opt/py/bin").mkdir(parents=True)
    (root / "opt/py/bin/python3.11").write_bytes(b"not an ELF file, enough for a plan")
    os.chmod(root / "opt/py/bin/python3.11", 0o700)
    return root


_OPTIONS = PlanOptions(use_cache=False, bytecode=False)


def test_a_plain_tree_plans(tmp_path: Path) -> None:
    plan = plan_image(
        _manifest(_interpreter("/opt/py/bin/python3.11")), Source.rootfs(_root(tmp_path)), _OPTIONS
    )
    assert plan.interpreter == "/opt/py/bin/python3.11"
    assert "/opt/py/bin/python3.11" in plan.paths()


def test_no_primary_interpreter(tmp_path: Path) -> None:
    interpreters = _interpreter("/opt/py/bin/python3.11")
    interpreters["/opt/py/bin/python3.11"]["primary"] = False
    with pytest.raises(PackError, match="no primary interpreter") as err:
        plan_image(_manifest(interpreters), Source.rootfs(_root(tmp_path)), _OPTIONS)
    assert "\n" not in str(err.value)


def test_root_that_is_not_the_captured_one(tmp_path: Path) -> None:
    root = _root(tmp_path, 'PRETTY_NAME="Alpine Linux v3.19"\nID=alpine\nVERSION_ID=3.19.1\n')
    with pytest.raises(PackError, match=r"is not the captured tree.*Alpine Linux v3\.19"):
        plan_image(_manifest(_interpreter("/opt/py/bin/python3.11")), Source.rootfs(root), _OPTIONS)


def test_symlink_escaping_the_root(tmp_path: Path) -> None:
    root = _root(tmp_path)
    os.symlink("../../../../../../../usr/bin/python3", root / "opt/py/bin/python")
    with pytest.raises(PackError, match="escapes the source root"):
        plan_image(_manifest(_interpreter("/opt/py/bin/python")), Source.rootfs(root), _OPTIONS)


def test_user_who_cannot_reach_the_interpreter(tmp_path: Path) -> None:
    root = _root(tmp_path)
    os.chmod(root / "opt", 0o700)
    manifest = _manifest(_interpreter("/opt/py/bin/python3.11"))
    with pytest.raises(PackError, match=r"--user nonroot cannot reach .*: /opt is mode 0700"):
        plan_image(
            manifest,
            Source.rootfs(root),
            PlanOptions(use_cache=False, bytecode=False, user="nonroot"),
        )
    with pytest.raises(PackError, match="--user 1000 cannot reach"):
        plan_image(
            manifest, Source.rootfs(root), PlanOptions(use_cache=False, bytecode=False, user="1000")
        )
    plan = plan_image(
        manifest, Source.rootfs(root), PlanOptions(use_cache=False, bytecode=False, user="root")
    )
    assert plan.interpreter


def test_secret_config_needs_include_secrets_and_app_is_placed(tmp_path: Path) -> None:
    root = _root(tmp_path)
    (root / "etc/app.ini").write_text("[db]\npassword = hunter2\n")
    manifest = _manifest(_interpreter("/opt/py/bin/python3.11"))
    manifest.sections["config_files"] = {
        "/etc/app.ini": {
            "path": "/etc/app.ini",
            "type": "file",
            "size": 24,
            "sha256": None,
            "fingerprint": "hmac-sha256:00",
            "keys": {"db.password": "hmac-sha256:11"},
        }
    }
    app = tmp_path / "app"
    (app / "pkg").mkdir(parents=True)
    (app / "pkg/main.py").write_text("print('hi')\n")
    (app / "pkg/big.log").write_text("x" * 100)
    (root / "data").mkdir()
    os.symlink("data", root / "srv")  # DEST under a symlinked folder of the tree
    options = PlanOptions(
        use_cache=False,
        bytecode=False,
        apps=[(str(app), "/srv/app")],
        exclude=["/data/app/pkg/*.log"],
    )
    plan = plan_image(manifest, Source.rootfs(root), options)
    assert plan.secret_configs == ("/etc/app.ini",)
    assert "/etc/app.ini" not in plan.paths()
    assert any(e.path == "/etc/app.ini" and "secret" in e.reason for e in plan.excluded)
    app_file = next(p for p in plan.files if p.entry.path == "/data/app/pkg/main.py")
    assert {p.entry.kind for p in plan.files if p.entry.path == "/srv"} == {"symlink"}
    assert ("/data/app/pkg/big.log", 100, "--exclude /data/app/pkg/*.log") in {
        (e.path, e.size, e.reason) for e in plan.excluded
    }
    assert app_file.group == "app"
    assert app_file.entry.open is not None
    with app_file.entry.open() as stream:
        assert stream.read() == b"print('hi')\n"
    with_secrets = PlanOptions(use_cache=False, bytecode=False, include_secrets=True)
    plan = plan_image(manifest, Source.rootfs(root), with_secrets)
    assert plan.secret_configs == ("/etc/app.ini",)
    assert "/etc/app.ini" in plan.paths()
