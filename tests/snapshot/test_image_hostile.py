"""Hostile images: every crafted entry is neutralised or refused with a clear line, and
nothing is ever written outside envpack's own temporary folder.

The images are ``docker save``-format tars made with Python's tarfile. Each capture runs
the real CLI with ``TMPDIR`` set to a work folder; a canary folder beside it (and the
absolute paths the entries aim at) must be untouched afterwards, and an ``strace`` of the
whole capture must show no file created or written outside the work folder and the output.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from envpack.snapshot.imagesource import ImageError, open_image
from image_helpers import layer_bytes, member, write_docker_archive, write_oci_layout

DIR, FILE, SYM, LNK = tarfile.DIRTYPE, tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE
_WRITE_FLAGS = re.compile(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC")
_PATH_CALLS = re.compile(
    r"^(?:\[pid\s+\d+\]\s+)?(?:\d+\s+)?(?P<call>mkdir|mkdirat|symlink|symlinkat|link|linkat|"
    r"rename|renameat2?|mknod|mknodat|unlink|unlinkat|rmdir|open|openat|creat)\((?P<args>.*)"
)
_QUOTED = re.compile(r'(?:(?:AT_FDCWD|\d+)<(?P<dir>[^>]*)>, )?"(?P<p>[^"]*)"')


def _tree(root: Path) -> dict[str, str]:
    """Every path under ``root`` with what it is (and a file's hash, a link's target)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "link:" + os.readlink(path)
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[rel] = "dir"
    return out


def _written_paths(trace: str) -> set[str]:
    """Paths the traced processes created, wrote, renamed or removed."""
    found = set()
    for line in trace.splitlines():
        match = _PATH_CALLS.match(line)
        if match is None:
            continue
        call, args = match["call"], match["args"]
        if call in ("open", "openat") and not _WRITE_FLAGS.search(args):
            continue
        if call == "creat" or call.startswith(("mk", "sym", "link", "ren", "unl", "rmd", "open")):
            for quoted in _QUOTED.finditer(args):
                path = quoted["p"]
                if not path.startswith("/") and quoted["dir"]:
                    path = os.path.join(quoted["dir"], path)
                found.add(os.path.normpath(path))
    return found


@pytest.fixture
def arena(tmp_path: Path) -> dict[str, Path]:
    work = tmp_path / "work"
    canary = tmp_path / "canary"
    work.mkdir()
    canary.mkdir()
    (canary / "keep.txt").write_text("untouched\n")
    return {"root": tmp_path, "work": work, "canary": canary}


def _hostile_layers(canary: Path) -> list[bytes]:
    first = [
        member("etc", DIR),
        member("etc/os-release", data=b'ID=debian\nVERSION_ID="12"\n'),
        member("../../../../../../" + str(canary).lstrip("/") + "/climbed.txt", data=b"x"),
        member(str(canary) + "/absolute.txt", data=b"abs"),
        member("evil", SYM, link=str(canary)),
        member("evil/through-link.txt", data=b"through"),
        member("evil2", SYM, link="../../../../../../" + str(canary).lstrip("/")),
        member("evil2/through-relative-link.txt", data=b"through2"),
        member("hard-out", LNK, link="../../../../etc/passwd"),
        member("hard-missing", LNK, link="/etc/shadow"),
        member("dev", DIR),
        member("dev/sda", tarfile.BLKTYPE),
        member("dev/null", tarfile.CHRTYPE),
        member("etc/pip.conf", tarfile.FIFOTYPE),
        member("etc/os-release", data=b'ID=debian\nVERSION_ID="12"\nNAME="dup"\n'),
        member("etc/os-release/under-a-file", data=b"x"),
    ]
    sparse = tarfile.TarInfo("var/sparse.img")
    sparse.pax_headers = {"GNU.sparse.size": str(10**13), "GNU.sparse.map": "0,0"}
    second: list[tuple[tarfile.TarInfo, bytes]] = [(sparse, b"")]
    first_bytes = layer_bytes(first)
    import io

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in second:
            tar.addfile(info, io.BytesIO(data))
    return [first_bytes, buffer.getvalue()]


@pytest.mark.parametrize("form", ["docker-archive", "oci"])
def test_hostile_entries_are_neutralised_with_a_line_each(
    arena: dict[str, Path], form: str
) -> None:
    """In place (a docker save tar) and streamed (an OCI layout's gzip layers) alike."""
    canary = arena["canary"]
    layers = _hostile_layers(canary)
    if form == "oci":
        image = write_oci_layout(arena["root"] / "hostile.oci", layers)
    else:
        image = write_docker_archive(arena["root"] / "hostile.tar", layers)
    before = _tree(arena["root"])
    with open_image(f"{form}:{image}", workdir=arena["work"]) as source:
        reasons = "\n".join(f"{path}: {reason}" for path, reason in source.load_issues())
        # Inside the image, each entry landed where a container runtime would put it.
        assert source.read_bytes(f"{canary}/absolute.txt") == b"abs"
        assert source.read_bytes(f"{canary}/through-link.txt") == b"through"
        assert source.read_bytes(f"{canary}/through-relative-link.txt") == b"through2"
        assert source.lstat(f"{canary}/climbed.txt") is None
        assert source.lstat("/hard-out") is None and source.lstat("/hard-missing") is None
        assert b"dup" in source.read_bytes("/etc/os-release")
        sparse = source.lstat("/var/sparse.img")
        assert sparse is not None and sparse.st_size == 10**13
        with pytest.raises(Exception, match="sparse"):
            source.read_bytes("/var/sparse.img")
        for path in (f"{canary}/absolute.txt", f"{canary}/through-link.txt"):
            source.read_bytes(path)  # copied out: into the temporary folder only
    for needle in (
        "climbs out of the image with '..'; entry skipped",
        "absolute name; read as",
        "written through a symlink; placed at",
        "outside the image; skipped",
        "which is not a file in the image; skipped",
        "a block-device; recorded, never created or opened",
        "a char-device; recorded, never created or opened",
        "a fifo; recorded, never created or opened",
        "a second entry for /etc/os-release; the later one is used",
        "is not a folder in the image; entry skipped",
        "a sparse file declaring 10000000000000 bytes; recorded, not read",
    ):
        assert needle in reasons, needle
    assert _tree(arena["root"]) == before  # canary, archive, work folder: as they were


def test_capture_of_a_hostile_image_writes_only_in_its_temporary_folder(
    arena: dict[str, Path],
) -> None:
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed (.ci/setup installs it)")
    canary = arena["canary"]
    archive = write_docker_archive(arena["root"] / "hostile.tar", _hostile_layers(canary))
    out = arena["root"] / "out"
    out.mkdir()
    before = _tree(canary)
    trace = arena["root"] / "trace"
    env = {**os.environ, "TMPDIR": str(arena["work"]), "PYTHONDONTWRITEBYTECODE": "1"}
    env["ENVPACK_CACHE_DIR"] = str(arena["work"] / "cache")
    done = subprocess.run(
        [strace, "-f", "-y", "-qq", "-o", str(trace),
         "-e", "trace=open,openat,creat,mkdir,mkdirat,symlink,symlinkat,link,linkat,rename,"
         "renameat,renameat2,mknod,mknodat,unlink,unlinkat,rmdir",
         sys.executable, "-m", "envpack", "capture", "-q", "--image", f"docker-archive:{archive}",
         "-o", str(out / "m.json")],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "m.json").read_text())
    assert manifest["meta"]["source"]["kind"] == "image"
    reasons = [issue["reason"] for issue in manifest["issues"] if issue["probe"] == "image"]
    assert any("climbs out of the image" in reason for reason in reasons)
    assert any("written through a symlink" in reason for reason in reasons)
    config = manifest["config_files"].get("/etc/pip.conf", {})
    assert config.get("type") == "fifo" or "fifo" in json.dumps(manifest["issues"])
    assert _tree(canary) == before
    written = _written_paths(trace.read_text())
    outside = {
        path
        for path in written
        if not path.startswith((str(arena["work"]) + "/", str(out) + "/"))
        and path not in (str(arena["work"]), str(out))
        and not path.startswith("/dev/")
    }
    assert outside == set(), sorted(outside)
    assert written, "the trace saw no write at all: the filter is broken"
    assert not [p for p in arena["work"].iterdir() if p.name.startswith("envpack-image-")]


def test_a_size_past_the_end_of_the_layer_refuses_the_image(arena: dict[str, Path]) -> None:
    layer = layer_bytes([member("big", data=b"tiny", size=50 * 1024**3), member("after")])
    archive = write_docker_archive(arena["root"] / "liar.tar", [layer])
    done = subprocess.run(
        [sys.executable, "-m", "envpack", "capture", "-q", "--image", str(archive)],
        env={**os.environ, "TMPDIR": str(arena["work"])},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "declares 53687091200 bytes, past the end of the layer" in lines[0]
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert list(arena["work"].iterdir()) == []  # the temporary folder went with the error


def test_a_gzip_bomb_stops_at_the_limit(arena: dict[str, Path]) -> None:
    zeros = layer_bytes([member("zeros", data=bytes(64 * 1024 * 1024))])
    layout = write_oci_layout(arena["root"] / "bomb", [zeros])
    with pytest.raises(ImageError, match="refused as a decompression bomb"):
        open_image(f"oci:{layout}", workdir=arena["work"], inflate_limit=8 * 1024 * 1024)
    assert list(arena["work"].iterdir()) == []


def test_not_an_image(arena: dict[str, Path]) -> None:
    plain = arena["root"] / "plain.tar"
    with tarfile.open(plain, "w") as tar:
        tar.add(str(arena["canary"]), arcname="x")
    for ref, message in (
        (str(plain), "neither manifest.json nor oci-layout"),
        (f"oci:{arena['canary']}", "not an OCI layout folder"),
        (f"docker-archive:{arena['root'] / 'missing.tar'}", "no such file"),
        ("oci-archive:", "no path or name"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "envpack", "capture", "-q", "--image", ref],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 2, (ref, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
