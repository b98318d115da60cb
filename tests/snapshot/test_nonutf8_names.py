"""File names that are not UTF-8: recorded percent-encoded (envpack.fsnames), never a crash.

Real names made of raw bytes on PATH, in site-packages (a dist-info), in a ``--root`` and
in a ``--config`` glob, through the real CLI; then the diff in every report format.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from urllib.parse import unquote_to_bytes

import jsonschema
import pytest

from envpack.fsnames import escape, escape_bytes, unescape
from envpack.manifest import schema_text
from realenv import FIXTURES, make_venv, run_envpack

FORMATS = ("table", "json", "markdown", "junit", "sarif", "github", "html")


def _bytes_path(*parts: bytes) -> bytes:
    return b"/".join(parts)


def _executable(path: bytes) -> None:
    shutil.copyfile(b"/usr/bin/true", path)
    os.chmod(path, 0o755)  # noqa: S103 - an executable on PATH, in a temporary folder


def _dist_info(site: bytes, folder: bytes, name: str) -> None:
    info = site + b"/" + folder
    os.makedirs(info)
    with open(info + b"/METADATA", "w") as stream:
        stream.write(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    with open(info + b"/RECORD", "w") as stream:
        stream.write(f"{name}/__init__.py,,\n")


def _capture(*args: str, env: dict[str, str] | None = None) -> dict[str, object]:
    result = run_envpack("capture", "-q", *args, env=env)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    jsonschema.validate(document, json.loads(schema_text()))
    assert isinstance(document, dict)
    return document


def test_the_escaping_is_lossless_and_leaves_utf8_names_alone() -> None:
    for raw in (b"plain", "caf\u00e9".encode(), b"caf\xe9", b"100%", b"%FF\xff", b"a\x80b%25"):
        recorded = escape_bytes(raw)
        assert recorded.isprintable()
        assert unquote_to_bytes(recorded) == raw
        name = os.fsdecode(raw)
        assert escape(name) == recorded
        assert unescape(recorded) == name
    assert escape_bytes("caf\u00e9.txt".encode()) == "caf\u00e9.txt"
    assert escape_bytes(b"caf\xe9.txt") == "caf%E9.txt"
    assert escape_bytes(b"100%.txt") == "100%25.txt"
    assert unescape("/etc/100%.conf") == "/etc/100%.conf"  # typed, not recorded: as it is


@pytest.mark.slow
def test_live_path_site_packages_and_config_glob(tmp_path: Path) -> None:
    base = os.fsencode(tmp_path)
    bindir = base + b"/bin"
    os.mkdir(bindir)
    _executable(bindir + b"/tool\xff")
    _executable(bindir + b"/50%off")
    python = make_venv(Path(sys.executable), tmp_path / "venv", [])
    site = os.fsencode(
        next((tmp_path / "venv/lib").glob("python3*/site-packages"))  # the venv's only one
    )
    _dist_info(site, b"odd\xe9-1.0.dist-info", "odd")
    conf = base + b"/conf"
    os.mkdir(conf)
    with open(conf + b"/caf\xe9.ini", "w") as stream:
        stream.write("[a]\nk = 1\n")
    env = {**os.environ, "PATH": os.fsdecode(bindir)}
    document = _capture(
        "--python", str(python), "--config", f"{tmp_path}/conf/*",
        "--only", "binaries", "--only", "python_packages", "--only", "config_files",
        env=env,
    )  # fmt: skip
    binaries = document["binaries"]
    assert isinstance(binaries, dict)
    assert sorted(binaries) == ["50%25off", "tool%FF"]
    assert unquote_to_bytes(binaries["tool%FF"]["path"]) == bindir + b"/tool\xff"
    odd = document["python_packages"]["odd"]  # type: ignore[index]
    assert odd["metadata_dir"] == "odd%E9-1.0.dist-info"
    key = f"{tmp_path}/conf/caf%E9.ini"
    assert document["config_files"][key]["keys"] == {"a.k": "1"}  # type: ignore[index]
    assert unquote_to_bytes(key) == conf + b"/caf\xe9.ini"


def _odd_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    shutil.copytree(FIXTURES / "rootfs/debian-py39-dpkg", root, symlinks=True)
    raw = os.fsencode(root)
    _executable(raw + b"/usr/bin/r\xfe")
    _dist_info(raw + b"/usr/lib/python3/dist-packages", b"m\xe9-2.0.dist-info", "meh")
    os.makedirs(raw + b"/etc/app/d\xff")
    with open(raw + b"/etc/app/d\xff/x\xff.conf", "w") as stream:
        stream.write("k=v\n")
    os.symlink(b"/etc/app/d\xff/x\xff.conf", raw + b"/etc/app/link.conf")
    return root


@pytest.mark.slow
def test_rootfs_names_through_the_cli(tmp_path: Path) -> None:
    root = _odd_root(tmp_path)
    document = _capture("--root", str(root), "--config", "/etc/app/**/*.conf")
    assert "r%FE" in document["binaries"]  # type: ignore[operator]
    assert document["python_packages"]["meh"]["metadata_dir"] == "m%E9-2.0.dist-info"  # type: ignore[index]
    files = document["config_files"]
    assert isinstance(files, dict)
    assert files["/etc/app/d%FF/x%FF.conf"]["keys"] == {"k": "v"}
    link = files["/etc/app/link.conf"]
    assert (link["link"], link["resolved"]) == ("/etc/app/d%FF/x%FF.conf",) * 2
    assert link["target_type"] == "file"


@pytest.mark.slow
def test_diff_renders_escaped_names_in_every_format(tmp_path: Path) -> None:
    root = _odd_root(tmp_path)
    before = tmp_path / "before.json"
    after = tmp_path / "after.json"
    for out in (before, after):
        result = run_envpack("capture", "-q", "--root", str(root), "--only", "binaries",
                             "--only", "config_files", "--config", "/etc/app/**/*.conf",
                             "--label", out.stem, "-o", str(out))  # fmt: skip
        assert result.returncode == 0, result.stderr
        if out is before:  # "after": one command gone, one new, a config key changed
            os.remove(os.fsencode(root) + b"/usr/bin/r\xfe")
            with open(os.fsencode(root) + b"/etc/app/d\xff/x\xff.conf", "w") as stream:
                stream.write("k=changed\n")
            _executable(os.fsencode(root) + b"/usr/bin/new\xfe")
    # A manifest written by another tool may hold lone surrogates: shown escaped too.
    foreign = json.loads(after.read_text())
    foreign["binaries"]["raw\udcff"] = foreign["binaries"]["new%FE"]
    (tmp_path / "foreign.json").write_text(json.dumps(foreign, ensure_ascii=True))
    for fmt in FORMATS:
        result = run_envpack("diff", str(before), str(tmp_path / "foreign.json"),
                             "--format", fmt, "--fail-on", "critical")  # fmt: skip
        assert result.returncode in (0, 1), f"{fmt}: {result.stderr}"
        assert "Traceback" not in result.stderr
        for name in ("r%FE", "new%FE", "raw%FF", "x%FF.conf"):
            # Workflow commands encode "%" themselves; the runner shows the name again.
            shown = name.replace("%", "%25") if fmt == "github" else name
            assert shown in result.stdout, f"{fmt} does not show {name}"
