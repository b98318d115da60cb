"""Finding and reading distribution metadata, checked against the stdlib on real files."""

from __future__ import annotations

import email.parser
import email.policy
import importlib.metadata
import os
import re
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from envpack.snapshot.distributions import (
    KIND_DIST_INFO,
    KIND_EGG,
    KIND_EGG_INFO,
    MetadataError,
    canonical_name,
    find_in,
    metadata_dir_of_egg,
    parse_headers,
    read_distribution,
    requires_from_requires_txt,
)
from envpack.snapshot.source import Source
from realenv import FIXTURES, pyenv_python

LEGACY = FIXTURES / "site-packages" / "legacy"
DEBIAN_DIST_PACKAGES = Path("/usr/lib/python3/dist-packages")


def _real_site_dirs() -> list[Path]:
    """site-packages folders of real interpreters on this machine."""
    dirs = [Path(p) for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    base27 = pyenv_python("2.7")
    if base27 is not None:
        dirs.append(base27.parent.parent / "lib" / "python2.7" / "site-packages")
    dirs.append(DEBIAN_DIST_PACKAGES)
    return [d for d in dict.fromkeys(dirs) if d.is_dir()]


def _real_metadata_files() -> list[Path]:
    files: list[Path] = []
    for site in _real_site_dirs():
        files += sorted(site.glob("*.dist-info/METADATA"))
        files += sorted(site.glob("*.egg-info/PKG-INFO"))
        files += sorted(p for p in site.glob("*.egg-info") if p.is_file())
    return files


def _squash(value: str) -> str:
    return re.sub(r"\s+", " ", value).strip()


def test_header_parser_agrees_with_email_parser_on_real_metadata() -> None:
    files = _real_metadata_files()
    if len(files) < 10:
        pytest.skip(f"only {len(files)} real METADATA files on this machine")
    parser = email.parser.Parser(policy=email.policy.compat32)
    for path in files:
        text = path.read_text("utf-8", "replace")
        ours = parse_headers(text)
        theirs = parser.parsestr(text, headersonly=True)
        for header in ("Name", "Version", "Requires-Python", "Requires-Dist", "Provides-Extra"):
            expected = [_squash(str(v)) for v in theirs.get_all(header) or []]
            assert [_squash(v) for v in ours.get(header.lower(), [])] == expected, (path, header)


def test_header_parser_folding_crlf_and_body() -> None:
    text = (
        "Metadata-Version: 2.1\r\n"
        "Name: demo\r\n"
        "Requires-Dist: a (>=1);\r\n"
        "\tpython_version < '3'\r\n"
        "Requires-Dist: b\r\n"
        "Description: first\r\n"
        "        |second\r\n"
        "\r\n"
        "Name: not-a-header: this is the body\r\n"
    )
    headers = parse_headers(text)
    assert headers["name"] == ["demo"]
    assert headers["requires-dist"] == ["a (>=1); python_version < '3'", "b"]
    assert headers["description"] == ["first |second"]
    # No blank line at all, and a body without headers.
    assert parse_headers("Name: x\nVersion: 1") == {"name": ["x"], "version": ["1"]}
    assert parse_headers("just text\n") == {}


def test_requires_txt_sections_match_importlib_metadata_on_real_egg_info() -> None:
    egg_infos = [LEGACY / "Legacy_Lib-1.2.egg-info"]
    if DEBIAN_DIST_PACKAGES.is_dir():
        egg_infos += sorted(DEBIAN_DIST_PACKAGES.glob("*.egg-info/requires.txt"))
    for path in egg_infos:
        folder = path if path.is_dir() else path.parent
        text = (folder / "requires.txt").read_text("utf-8")
        expected = importlib.metadata.PathDistribution(folder).requires
        assert requires_from_requires_txt(text) == expected, folder


def test_requires_txt_marker_and_url_forms() -> None:
    text = (
        "six>=1.10\n\n"
        '[:python_version < "3"]\nenum34\n\n'
        "[socks]\nPySocks>=1.5.6\n"
        '[tls:sys_platform == "win32"]\npywin32\n'
        "[vcs]\nthing @ https://example.org/thing.whl\n"
    )
    assert requires_from_requires_txt(text) == [
        "six>=1.10",
        'enum34; python_version < "3"',
        'PySocks>=1.5.6; extra == "socks"',
        'pywin32; (sys_platform == "win32") and extra == "tls"',
        'thing @ https://example.org/thing.whl ; extra == "vcs"',
    ]


def test_canonical_name_is_pep_503() -> None:
    names = ["Legacy_Lib", "zope.interface", "PyYAML", "a-_.-b", "Foo__Bar", "x"]
    names += [
        canonical
        for path in _real_metadata_files()
        for canonical in parse_headers(path.read_text("utf-8", "replace")).get("name", [])
    ]
    for name in names:
        assert canonical_name(name) == canonicalize_name(name), name


def test_find_in_fixture_tree_lists_every_layout() -> None:
    found = find_in(Source.live(), str(LEGACY))
    assert [(md.name, md.kind, md.is_file) for md in found] == [
        ("broken-1.0.dist-info", KIND_DIST_INFO, False),
        ("noname-3.0.dist-info", KIND_DIST_INFO, False),
        ("Legacy_Lib-1.2.egg-info", KIND_EGG_INFO, False),
        ("distutils_thing-0.5.egg-info", KIND_EGG_INFO, True),
        ("oldtool-0.9-py3.11.egg", KIND_EGG, False),
    ]
    # The same egg, met as a sys.path entry of its own.
    egg = metadata_dir_of_egg(Source.live(), str(LEGACY / "oldtool-0.9-py3.11.egg"))
    assert egg == found[-1]
    assert metadata_dir_of_egg(Source.live(), str(LEGACY)) is None


def test_read_each_fixture_layout() -> None:
    source = Source.live()
    by_name = {md.name: md for md in find_in(source, str(LEGACY))}

    legacy = read_distribution(source, by_name["Legacy_Lib-1.2.egg-info"])
    assert (legacy.name, legacy.version, legacy.installer) == ("Legacy_Lib", "1.2", "pip")
    assert legacy.requires == [
        "six>=1.10",
        'enum34; python_version < "3"',
        'PySocks>=1.5.6; extra == "socks"',
        'pywin32; (sys_platform == "win32") and extra == "tls"',
    ]
    assert legacy.top_level == ["legacy_lib"]
    assert legacy.installed_files is not None and len(legacy.installed_files) == 6
    assert legacy.record is None and legacy.problems == []

    thing = read_distribution(source, by_name["distutils_thing-0.5.egg-info"])
    assert (thing.name, thing.version, thing.requires, thing.top_level) == (
        "distutils-thing",
        "0.5",
        [],
        None,
    )

    egg = read_distribution(source, by_name["oldtool-0.9-py3.11.egg"])
    assert (egg.name, egg.version, egg.requires_python, egg.requires) == (
        "oldtool",
        "0.9",
        ">=3.6",
        ["requests"],
    )

    noname = read_distribution(source, by_name["noname-3.0.dist-info"])
    assert (noname.name, noname.version) == ("noname", "3.0")
    assert noname.problems and "no Name or Version" in noname.problems[0]

    with pytest.raises(MetadataError, match="METADATA: no such file"):
        read_distribution(source, by_name["broken-1.0.dist-info"])


def test_real_site_dirs_match_importlib_metadata() -> None:
    """Every (name, version) importlib.metadata finds in a real folder, we find too."""
    source = Source.live()
    checked = 0
    for site in _real_site_dirs():
        ours = set()
        for md in find_in(source, str(site)):
            try:
                dist = read_distribution(source, md)
            except MetadataError:
                continue
            ours.add((canonical_name(dist.name), dist.version))
        theirs = {
            (canonical_name(d.metadata["Name"]), d.version)
            for d in importlib.metadata.distributions(path=[str(site)])
            if d.metadata["Name"]
        }
        assert ours == theirs, site
        checked += len(ours)
    assert checked > 10


def test_read_metadata_through_a_rootfs(tmp_path: Path) -> None:
    site = tmp_path / "usr" / "lib" / "python3" / "dist-packages"
    dist_info = site / "demo-1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: Demo\nVersion: 1.0\n\n")
    # A hostile symlink: INSTALLER points at the host's /etc/hostname; inside the rootfs it
    # resolves to <root>/etc/hostname, which does not exist.
    (dist_info / "INSTALLER").symlink_to("/etc/hostname")
    source = Source.rootfs(tmp_path)
    [md] = find_in(source, "/usr/lib/python3/dist-packages")
    dist = read_distribution(source, md)
    assert (dist.name, dist.version, dist.installer) == ("Demo", "1.0", None)
    assert len(dist.problems) == 1 and "INSTALLER" in dist.problems[0]


def test_zipped_egg_and_a_corrupt_one(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "zipped-2.0-py3.11.egg", "w") as archive:
        archive.writestr(
            "EGG-INFO/PKG-INFO", "Metadata-Version: 1.1\nName: zipped\nVersion: 2.0\n\n"
        )
        archive.writestr("EGG-INFO/requires.txt", "six\n[extra]\nattrs\n")
        archive.writestr("EGG-INFO/top_level.txt", "zipped\n")
        archive.writestr("zipped/__init__.py", "")
    (tmp_path / "corrupt-1.0-py3.11.egg").write_bytes(b"PK\x03\x04 not really a zip")
    source = Source.live()
    found = {md.name: md for md in find_in(source, str(tmp_path))}
    assert {(n, md.kind, md.is_file) for n, md in found.items()} == {
        ("zipped-2.0-py3.11.egg", KIND_EGG, True),
        ("corrupt-1.0-py3.11.egg", KIND_EGG, True),
    }
    dist = read_distribution(source, found["zipped-2.0-py3.11.egg"])
    assert (dist.name, dist.version, dist.requires, dist.top_level) == (
        "zipped",
        "2.0",
        ["six", 'attrs; extra == "extra"'],
        ["zipped"],
    )
    with pytest.raises(MetadataError, match="not a readable zipped egg"):
        read_distribution(source, found["corrupt-1.0-py3.11.egg"])
    # The zipped egg as a sys.path entry of its own is the same distribution.
    assert (
        metadata_dir_of_egg(source, str(tmp_path / "zipped-2.0-py3.11.egg"))
        == found["zipped-2.0-py3.11.egg"]
    )


def test_fifo_and_symlink_loop_in_a_hostile_rootfs(tmp_path: Path) -> None:
    site = tmp_path / "usr" / "lib" / "python3" / "dist-packages"
    fifo = site / "fifo-1.0.dist-info"
    fifo.mkdir(parents=True)
    os.mkfifo(fifo / "METADATA")
    (site / "loop-1.0.dist-info").symlink_to("loop-1.0.dist-info")
    source = Source.rootfs(tmp_path)
    found = find_in(source, "/usr/lib/python3/dist-packages")
    # The self-loop is not a folder, so it is not a candidate; the FIFO is never opened.
    assert [md.name for md in found] == ["fifo-1.0.dist-info"]
    with pytest.raises(MetadataError, match="fifo"):
        read_distribution(source, found[0])
