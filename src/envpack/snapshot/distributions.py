"""Installed Python distributions, found and read as files (never by importing them).

Three metadata layouts exist side by side on real systems:

- ``name-1.0.dist-info/`` (wheels, PEP 376/627): METADATA, RECORD, INSTALLER,
  direct_url.json (PEP 610), top_level.txt;
- ``name-1.0-py3.11.egg-info`` — a folder (setuptools, ``setup.py develop``, legacy pip
  installs, Debian's packages) with PKG-INFO, requires.txt, top_level.txt,
  installed-files.txt; or a single PKG-INFO-format file (distutils);
- ``name-1.0-py3.11.egg`` — an egg (easy_install): a folder with ``EGG-INFO/``, or a zip
  file holding the same.

METADATA and PKG-INFO are read with a small header parser: the headers end at the first
blank line, and ``email.parser`` would spend most of a capture's time on the long
descriptions that follow them.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from dataclasses import dataclass, field
from typing import Any

from envpack.snapshot.record import record_rows
from envpack.snapshot.source import Source, SourceReadError

__all__ = [
    "Distribution",
    "MetadataDir",
    "MetadataError",
    "canonical_name",
    "find_in",
    "metadata_dir_of_egg",
    "parse_headers",
    "read_distribution",
    "requires_from_requires_txt",
]

KIND_DIST_INFO = "dist-info"
KIND_EGG_INFO = "egg-info"
KIND_EGG = "egg"
# Within one folder a wheel's metadata is preferred to older layouts of the same name
# (Debian ships both "cryptography-38.0.4.dist-info" and "cryptography.egg-info").
_KIND_ORDER = {KIND_DIST_INFO: 0, KIND_EGG_INFO: 1, KIND_EGG: 2}
_METADATA_LIMIT = 16 * 1024 * 1024
# "[extra]", "[:python_version < '3']", "[extra:sys_platform == 'win32']"
# PEP 503: runs of "-", "_" and "." are one "-", case folded. Written out rather than
# imported from packaging.utils, whose import pulls packaging.tags (~15 ms per capture).
_NAME_SEPARATORS = re.compile(r"[-_.]+")
_SECTION = re.compile(r"^\[(?P<extra>[^:\]]*)(?::(?P<marker>.*))?\]$")


class MetadataError(SourceReadError):
    """A distribution's metadata could not be read or makes no sense."""


@dataclass(frozen=True)
class MetadataDir:
    """Where one distribution's metadata was found."""

    location: str
    """The folder holding it (a sys.path entry, inside the source)."""
    name: str
    """``requests-2.31.0.dist-info``, ``foo.egg-info``, ``foo-1.0-py2.7.egg``."""
    kind: str
    """``dist-info``, ``egg-info`` or ``egg``."""
    is_file: bool = False
    """An egg-info *file* (PKG-INFO format) or a zipped egg, rather than a folder."""

    @property
    def path(self) -> str:
        return _join(self.location, self.name)

    @property
    def info_dir(self) -> str | None:
        """The folder holding the metadata files; ``None`` for an egg-info file."""
        if self.is_file:
            return None
        return _join(self.path, "EGG-INFO") if self.kind == KIND_EGG else self.path

    @property
    def headers_file(self) -> str:
        if self.is_file:
            return self.path
        info = self.info_dir or self.path
        return _join(info, "METADATA" if self.kind == KIND_DIST_INFO else "PKG-INFO")

    def sort_key(self) -> tuple[int, str]:
        return (_KIND_ORDER[self.kind], self.name)


@dataclass
class Distribution:
    """What one metadata folder says about its distribution."""

    metadata: MetadataDir
    name: str
    version: str
    requires: list[str] = field(default_factory=list)
    requires_python: str | None = None
    installer: str | None = None
    direct_url: dict[str, Any] | None = None
    top_level: list[str] | None = None
    """From top_level.txt; ``None`` when there is none (the probe derives it from RECORD)."""
    record: list[list[str]] | None = None
    """RECORD's CSV rows (see :mod:`.record`); ``None`` when there is no RECORD."""
    installed_files: list[str] | None = None
    """installed-files.txt of a legacy pip install (paths relative to the egg-info)."""
    problems: list[str] = field(default_factory=list)
    """Files that exist but could not be read or parsed, as ``"FILE: reason"``."""


def canonical_name(name: str) -> str:
    """The PEP 503 normalised form of a distribution name.

    >>> canonical_name("Legacy_Lib"), canonical_name("zope.interface")
    ('legacy-lib', 'zope-interface')
    """
    return _NAME_SEPARATORS.sub("-", name).lower()


def _join(folder: str, name: str) -> str:
    return folder.rstrip("/") + "/" + name


def find_in(source: Source, location: str) -> list[MetadataDir]:
    """Every distribution's metadata in one folder, dist-info first, then by name.

    A location that is missing or not a folder (a zip file on sys.path) holds nothing.
    """
    found: list[MetadataDir] = []
    for entry in source.scandir(location):
        name = entry.name
        lower = name.lower()
        if lower.endswith(".dist-info"):
            if _is_dir(entry):
                found.append(MetadataDir(location, name, KIND_DIST_INFO))
        elif lower.endswith(".egg-info"):
            is_dir = _is_dir(entry)
            found.append(MetadataDir(location, name, KIND_EGG_INFO, is_file=not is_dir))
        elif lower.endswith(".egg"):
            egg = _egg(source, location, name)
            if egg is not None:
                found.append(egg)
    found.sort(key=MetadataDir.sort_key)
    return found


def metadata_dir_of_egg(source: Source, entry: str) -> MetadataDir | None:
    """The metadata of a sys.path entry that is itself an unzipped egg, else ``None``."""
    trimmed = entry.rstrip("/")
    if not trimmed.lower().endswith(".egg"):
        return None
    parent, _, name = trimmed.rpartition("/")
    return _egg(source, parent or "/", name)


def _egg(source: Source, location: str, name: str) -> MetadataDir | None:
    """An unzipped egg (a folder with EGG-INFO/) or a zipped one; else ``None``."""
    egg = MetadataDir(location, name, KIND_EGG)
    if source.is_dir(egg.info_dir or ""):
        return egg
    if source.is_file(egg.path):
        return MetadataDir(location, name, KIND_EGG, is_file=True)
    return None


def _is_dir(entry: Any) -> bool:
    # Silence is right here: an entry that vanished since the listing is not installed,
    # and a *.dist-info that is not a folder (a stray file) is not a distribution. A
    # symlink is followed inside the source (Source.scandir's entries).
    try:
        return bool(entry.is_dir())
    except OSError:
        return False


def parse_headers(text: str) -> dict[str, list[str]]:
    """The RFC 822 headers of METADATA/PKG-INFO: lower-cased name → values in order.

    Stops at the first blank line (the description body follows). Folded lines (starting
    with a space or tab) continue the previous header and are joined with one space.

    >>> parse_headers("Name: a\\nRequires-Dist: b\\nRequires-Dist: c;\\n  extra == 'x'\\n\\nbody")
    {'name': ['a'], 'requires-dist': ['b', "c; extra == 'x'"]}
    """
    headers: dict[str, list[str]] = {}
    values: list[str] | None = None
    for raw in text.split("\n"):
        line = raw.rstrip("\r")
        if not line:
            break
        if line[0] in " \t":
            if values:
                continued = line.strip()
                if continued:
                    values[-1] = f"{values[-1]} {continued}" if values[-1] else continued
            continue
        key, sep, value = line.partition(":")
        if not sep or not key.strip():
            break  # not a header: the body starts here, as email.parser would decide
        values = headers.setdefault(key.strip().lower(), [])
        values.append(value.strip())
    return headers


def requires_from_requires_txt(text: str) -> list[str]:
    """Requires-Dist strings from setuptools' requires.txt sections, in file order.

    ``[extra]`` adds ``extra == "extra"``, ``[:marker]`` adds the marker, and
    ``[extra:marker]`` both, the way setuptools itself turns them into Requires-Dist.

    >>> requires_from_requires_txt('six\\n[socks]\\nPySocks\\n[:python_version < "3"]\\nenum34')
    ['six', 'PySocks; extra == "socks"', 'enum34; python_version < "3"']
    """
    requires: list[str] = []
    marker: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        section = _SECTION.match(line)
        if section:
            extra = section["extra"].strip()
            condition = (section["marker"] or "").strip()
            parts = []
            if condition:
                parts.append(f"({condition})" if extra else condition)
            if extra:
                parts.append(f'extra == "{extra}"')
            marker = " and ".join(parts) or None
            continue
        if marker:
            # "pkg @ https://…/x.whl;marker" would read the ";" as part of the URL.
            line = f"{line} ; {marker}" if "@" in line else f"{line}; {marker}"
        requires.append(line)
    return requires


def _name_version_from_dir(name: str) -> tuple[str | None, str | None]:
    """``requests-2.31.0.dist-info`` → ``("requests", "2.31.0")``; missing parts → None."""
    stem = name.rsplit(".", 1)[0]
    parts = stem.split("-")
    dist = parts[0] or None
    version = parts[1] if len(parts) > 1 and parts[1] else None
    return dist, version


def _read_text(source: Source, path: str, problems: list[str]) -> str | None:
    """A metadata file's text; unreadable or past the limit → a problem noted and ``None``."""
    try:  # whole: a RECORD cut short would silently drop files from the package
        return source.read_text(path, limit=_METADATA_LIMIT, whole=True)
    except SourceReadError as err:
        problems.append(str(err))
        return None


def read_distribution(source: Source, md: MetadataDir) -> Distribution:
    """Read one distribution's metadata files.

    Raises :class:`MetadataError` when its METADATA/PKG-INFO cannot be read or names no
    distribution. Other unreadable files are noted in ``problems`` and left out.
    """
    if md.kind == KIND_EGG and md.is_file:
        return _read_zipped_egg(source, md)
    info_dir = md.info_dir
    present: set[str] = set()
    if info_dir is not None:
        # One listing instead of a failed open per optional file (most have no
        # direct_url.json, wheels have no requires.txt …).
        try:
            present = {entry.name for entry in source.scandir(info_dir)}
        except SourceReadError as err:
            raise MetadataError(str(err)) from err
        if md.headers_file.rsplit("/", 1)[1] not in present:
            raise MetadataError(f"{md.headers_file}: no such file; not a readable distribution")
    dist = _from_headers(source, md)
    if info_dir is not None:
        _read_optional_files(source, dist, info_dir, present)
    return dist


def _from_headers(source: Source, md: MetadataDir) -> Distribution:
    try:  # the headers come first: a long description cut at the limit loses nothing
        text = source.read_text(md.headers_file, limit=_METADATA_LIMIT)
    except SourceReadError as err:
        raise MetadataError(str(err)) from err
    return _from_header_text(md, text, md.headers_file)


def _from_header_text(md: MetadataDir, text: str, where: str) -> Distribution:
    headers = parse_headers(text)
    dir_name, dir_version = _name_version_from_dir(md.name)
    name = (headers.get("name") or [""])[0] or dir_name
    version = (headers.get("version") or [""])[0] or dir_version
    if not name or not version:
        raise MetadataError(f"{where}: no Name or Version header")
    dist = Distribution(
        metadata=md,
        name=name,
        version=version,
        requires=list(headers.get("requires-dist", [])),
        requires_python=(headers.get("requires-python") or [""])[0] or None,
    )
    if not headers.get("name") or not headers.get("version"):
        dist.problems.append(f"{where}: no Name or Version header; taken from the folder")
    return dist


def _read_optional_files(
    source: Source, dist: Distribution, info_dir: str, present: set[str]
) -> None:
    def read(file_name: str) -> str | None:
        if file_name not in present:
            return None
        return _read_text(source, _join(info_dir, file_name), dist.problems)

    installer = read("INSTALLER")
    if installer is not None and installer.strip():
        dist.installer = installer.strip().splitlines()[0].strip()
    direct_url = read("direct_url.json")
    if direct_url is not None:
        path = _join(info_dir, "direct_url.json")
        dist.direct_url = _parse_direct_url(direct_url, path, dist.problems)
    top_level = read("top_level.txt")
    if top_level is not None:
        dist.top_level = sorted({line.strip() for line in top_level.splitlines() if line.strip()})
    if dist.metadata.kind == KIND_DIST_INFO:
        record = read("RECORD")
        if record is not None:
            dist.record = record_rows(record)
        return
    if not dist.requires:
        requires = read("requires.txt")
        if requires is not None:
            dist.requires = requires_from_requires_txt(requires)
    installed = read("installed-files.txt")
    if installed is not None:
        dist.installed_files = [line for line in installed.splitlines() if line.strip()]


def _read_zipped_egg(source: Source, md: MetadataDir) -> Distribution:
    """PKG-INFO, requires.txt and top_level.txt from a zipped egg's EGG-INFO/."""
    try:
        fd, _ = source.open_fd(md.path)
    except SourceReadError as err:
        raise MetadataError(str(err)) from err
    try:
        with os.fdopen(fd, "rb") as stream, zipfile.ZipFile(stream) as archive:
            members = {info.filename: info for info in archive.infolist()}

            def member(name: str) -> str | None:
                info = members.get("EGG-INFO/" + name)
                if info is None:
                    return None
                if info.file_size > _METADATA_LIMIT:
                    raise MetadataError(f"{md.path}: EGG-INFO/{name} is too large")
                return archive.read(info).decode("utf-8", "replace")

            pkg_info = member("PKG-INFO")
            if pkg_info is None:
                raise MetadataError(f"{md.path}: no EGG-INFO/PKG-INFO in the zipped egg")
            dist = _from_header_text(md, pkg_info, md.path + "/EGG-INFO/PKG-INFO")
            top_level = member("top_level.txt")
            requires = None if dist.requires else member("requires.txt")
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise MetadataError(f"{md.path}: not a readable zipped egg ({err})") from err
    if top_level is not None:
        dist.top_level = sorted({line.strip() for line in top_level.splitlines() if line.strip()})
    if requires is not None:
        dist.requires = requires_from_requires_txt(requires)
    return dist


def _parse_direct_url(text: str, path: str, problems: list[str]) -> dict[str, Any] | None:
    try:
        data = json.loads(text)
    except ValueError as err:
        problems.append(f"{path}: not valid JSON ({err})")
        return None
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        problems.append(f"{path}: not a PEP 610 direct URL (no 'url')")
        return None
    return data
