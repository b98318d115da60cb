"""Who installed a file: a dpkg, apk or rpm package, or a Python distribution.

The indexes are read from the package databases as files (dpkg's ``info/*.list``, apk's
``installed`` ``F:``/``R:`` lines, the rpmdb's file lists, and each captured
distribution's ``RECORD``), built on the first question and kept for the capture.

On a /usr-merged system ``/lib`` is a symlink to ``usr/lib``: dpkg may list
``/lib/x86_64-linux-gnu/libc.so.6`` while the loader finds
``/usr/lib/x86_64-linux-gnu/libc.so.6``. Both spellings are tried, and so is the path
with every symlink resolved.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping
from typing import Any

from envpack.snapshot.context import CaptureContext
from envpack.snapshot.hashcache import HashCache, cache_for
from envpack.snapshot.hashcache import stat_key as _stat_key
from envpack.snapshot.source import Source, SourceReadError

__all__ = [
    "Owner",
    "OwnerIndex",
    "merged_spelling",
    "owners_for",
]

Owner = dict[str, str]
"""``{"kind": "dpkg"|"apk"|"rpm"|"python", "name": …, "version": …}``."""

_MERGED_TOPS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_DPKG_INFO = "/var/lib/dpkg/info"
# dpkg rewrites its status file and renames list files into info/ (the folder's mtime
# moves) on every change; apk rewrites its installed file; rpm its sqlite database.
_DATABASE_FILES = (
    "/var/lib/dpkg/status",
    _DPKG_INFO,
    "/lib/apk/db/installed",
    "/var/lib/rpm/rpmdb.sqlite",
    "/usr/lib/sysimage/rpm/rpmdb.sqlite",
)


def merged_spelling(path: str) -> str | None:
    """The other spelling of ``path`` under /usr-merge (``/lib/x`` ⇄ ``/usr/lib/x``)."""
    parts = path.split("/", 3)
    if len(parts) >= 3 and parts[1] in _MERGED_TOPS:
        return "/usr" + path
    if len(parts) >= 4 and parts[1] == "usr" and parts[2] in _MERGED_TOPS:
        return "/" + "/".join(parts[2:])
    return None


class OwnerIndex:
    """Path → owner for one source; each index is built once, on first use."""

    def __init__(
        self,
        source: Source,
        python_packages: Mapping[str, Mapping[str, Any]] | None = None,
        cache: HashCache | None = None,
    ) -> None:
        self.source = source
        self.cache = cache
        """Remembers system-package answers while the package databases are unchanged."""
        self._memo: dict[str, str] | None = None
        self._system_complete = False
        """Every database read without a problem: only then are answers remembered."""
        self._scope = ""
        self._python_components = dict(python_packages or {})
        self._system: dict[str, Owner] | None = None
        self._python: dict[str, Owner] | None = None
        self._merged: bool | None = None
        self.problems: list[tuple[str, str]] = []
        """(path, reason) of databases that could not be read; the probe records them."""

    def owner(self, path: str, real_path: str | None = None) -> Owner | None:
        """The owner of the file at ``path`` (inside the source), or ``None``."""
        spellings = self._spellings(path, real_path)
        for candidate in spellings:
            found = self.python_index.get(candidate)
            if found is not None:
                return dict(found)
        return self._system_owner(spellings)

    def _system_owner(self, spellings: list[str]) -> Owner | None:
        """From the package databases; remembered across captures while they are unchanged.

        Building the index reads every dpkg file list (~100,000 lines); a warm capture
        asks the hash cache instead, under a scope naming the databases' ``stat`` keys.
        """
        if self._memo is None:
            self._scope = self._database_scope()
            self._memo = self.cache.memo(self._scope) if self.cache and self._scope else {}
        name = "\n".join(spellings)
        remembered = self._memo.get(name)
        if remembered is not None:
            owner: Owner | None = json.loads(remembered)
            return owner
        index = self.system_index
        owner = next((dict(index[c]) for c in spellings if c in index), None)
        if self.cache is not None and self._scope and self._system_complete:
            self._memo[name] = json.dumps(owner)
            self.cache.remember_memo(
                "owners:" + self.source.root, self._scope, name, self._memo[name]
            )
        return owner

    def _database_scope(self) -> str:
        parts = [self.source.root, str(self.is_usr_merged())]
        for path in _DATABASE_FILES:
            try:
                st = self.source.stat(path)
            except SourceReadError:
                return ""  # unreadable: never remembered
            parts.append("-" if st is None else ",".join(map(str, _stat_key(st))))
        return "owners/1:" + ";".join(parts)

    def _spellings(self, path: str, real_path: str | None) -> list[str]:
        seen = [path]
        if real_path and real_path != path:
            seen.append(real_path)
        if self.is_usr_merged():
            seen += [m for m in (merged_spelling(p) for p in list(seen)) if m]
        return seen

    def is_usr_merged(self) -> bool:
        if self._merged is None:
            target = self.source.readlink("/lib")
            self._merged = target is not None and target.strip("/") in ("usr/lib", "usr/lib/")
        return self._merged

    # -- Python distributions --------------------------------------------------------------

    @property
    def python_index(self) -> dict[str, Owner]:
        if self._python is None:
            self._python = {}
            for component in self._python_components.values():
                self._add_distribution(self._python, component)
        return self._python

    def _add_distribution(self, index: dict[str, Owner], component: Mapping[str, Any]) -> None:
        location = component.get("location")
        metadata_dir = component.get("metadata_dir")
        if not isinstance(location, str) or not isinstance(metadata_dir, str):
            return
        owner = {
            "kind": "python",
            "name": str(component.get("name", "")),
            "version": str(component.get("version", "")),
        }
        from envpack.snapshot.record import record_rows, resolve_record_path

        base = posixpath.join(location, metadata_dir)
        paths: list[str] = []
        try:
            text = self.source.read_text_or_none(posixpath.join(base, "RECORD"), whole=True)
            if text is not None:
                # Only the paths matter here: no per-row entry objects (numpy: 1,000+).
                paths = [row[0] for row in record_rows(text)]
            else:  # an egg-info lists its files relative to itself
                text = self.source.read_text_or_none(
                    posixpath.join(base, "installed-files.txt"), whole=True
                )
                location = base
                paths = [] if text is None else [p for p in text.splitlines() if p.strip()]
        except SourceReadError as err:
            self.problems.append((base, str(err)))
            return
        real_location = self.source.resolve(location).inner
        for relative in paths:
            index.setdefault(resolve_record_path(location, relative), owner)
            if real_location != location:
                index.setdefault(resolve_record_path(real_location, relative), owner)

    # -- system packages --------------------------------------------------------------------

    @property
    def system_index_built(self) -> bool:
        """Whether the package databases were read (a warm capture may not need them)."""
        return self._system is not None

    @property
    def system_index(self) -> dict[str, Owner]:
        if self._system is None:
            self._system = {}
            self._add_dpkg(self._system)
            self._add_apk(self._system)
            self._add_rpm(self._system)
            self._system_complete = not self.problems
        return self._system

    def _add_dpkg(self, index: dict[str, Owner]) -> None:
        names = [n for n in self.source.listdir(_DPKG_INFO) if n.endswith(".list")]
        if not names:
            return
        from envpack.snapshot.dpkg_status import installed_packages

        texts = []
        try:
            status = self.source.read_text_or_none("/var/lib/dpkg/status", whole=True)
        except SourceReadError as err:
            self.problems.append(("/var/lib/dpkg/status", str(err)))
            status = None
        if status is not None:
            texts.append(status)
        versions: dict[str, str] = {}
        for package in installed_packages(texts):
            versions[f"{package.name}:{package.architecture}"] = package.version
            versions.setdefault(package.name, package.version)
        # Reversed, with dict.update (last wins): the first list to name a path owns it,
        # as with setdefault, at C speed over ~100,000 lines.
        for filename in reversed(names):
            stem = filename[: -len(".list")]
            name = stem.split(":", 1)[0]
            version = versions.get(stem) or versions.get(name)
            if version is None:
                continue  # a leftover list of a removed package
            owner = {"kind": "dpkg", "name": name, "version": version}
            try:
                text = self.source.read_text(f"{_DPKG_INFO}/{filename}", whole=True)
            except SourceReadError as err:
                self.problems.append((f"{_DPKG_INFO}/{filename}", str(err)))
                continue
            index.update(dict.fromkeys(text.splitlines(), owner))

    def _add_apk(self, index: dict[str, Owner]) -> None:
        path = "/lib/apk/db/installed"
        try:
            text = self.source.read_text_or_none(path, whole=True)
        except SourceReadError as err:
            self.problems.append((path, str(err)))
            return
        if not text:
            return
        from envpack.snapshot.apk_db import installed_files

        for name, version, path in installed_files(text):
            index.setdefault(path, {"kind": "apk", "name": name, "version": version})

    def _add_rpm(self, index: dict[str, Owner]) -> None:
        from envpack.snapshot.rpmdb import read_rpmdb

        try:
            contents = read_rpmdb(self.source)
        except SourceReadError as err:
            self.problems.append(("rpmdb", str(err)))
            return
        if contents is None:
            return
        for package in contents.packages:
            owner = {"kind": "rpm", "name": package.name, "version": package.evr}
            for path in package.files:
                index.setdefault(path, owner)


def owners_for(ctx: CaptureContext) -> OwnerIndex:
    """The capture's one owner index, over the ``python_packages`` captured so far."""
    return ctx.shared(
        "owners",
        lambda: OwnerIndex(ctx.source, ctx.sections.get("python_packages"), cache_for(ctx)),
    )
