"""Find the file a ``DT_NEEDED`` name loads, the way the dynamic loader would.

glibc's order (``elf/dl-load.c``, ``_dl_map_object``), for a name without a slash:

1. ``DT_RPATH`` of the requester, then of the object that loaded it, and so on up to the
   main program — but only when the requester has no ``DT_RUNPATH``;
2. ``LD_LIBRARY_PATH`` (live host only: an offline rootfs has no process environment);
3. ``DT_RUNPATH`` of the requester only (not inherited);
4. ``/etc/ld.so.cache`` — parsed here from its ``glibc-ld.so.cache1.1`` format; when a
   tree has no cache, the folders ``ldconfig`` would have put in it (``/etc/ld.so.conf``
   and its ``include`` globs) stand in for it;
5. the default folders: the multiarch ones (``/lib/x86_64-linux-gnu``…), ``lib64`` on a
   64-bit system, ``/lib``, ``/usr/lib``.

``$ORIGIN``, ``$LIB`` and ``$PLATFORM`` (and their ``${…}`` forms) are expanded in
RPATH/RUNPATH. A candidate whose ELF class, machine or byte order differs from the
requester's is skipped, as the loader does (a 32-bit ``libz`` never satisfies a 64-bit
program). musl's loader is simpler: ``LD_LIBRARY_PATH``, then RPATH/RUNPATH alike, then
``/etc/ld-musl-<arch>.path`` or ``/lib:/usr/local/lib:/usr/lib``.

Every path is looked up inside the :class:`Source`, so a ``--root`` tree resolves against
itself, never against the host.
"""

from __future__ import annotations

import os
import posixpath
import stat
import struct
from dataclasses import dataclass

from envpack.fsnames import escape_bytes
from envpack.snapshot.context import CaptureContext
from envpack.snapshot.elf import ElfInfo, parse_elf_bytes
from envpack.snapshot.hashcache import HashCache, cache_for
from envpack.snapshot.source import Source, SourceReadError, expand_glob

__all__ = [
    "LdSoCache",
    "LoadedObject",
    "Resolver",
    "parse_ld_so_cache",
    "resolver_for",
]

_CACHE_MAGIC_NEW = b"glibc-ld.so.cache1.1"
_CACHE_MAGIC_OLD = b"ld.so-1.7.0"
_NEW_HEADER = 48
_NEW_ENTRY = 24
_OLD_ENTRY = 12
_MAX_CONF_DEPTH = 16
_PATH_MAX = 4096
_FACTS_KIND = "elf/1"
"""Hash-cache facts: ElfInfo.to_cache(), or "null" for a file that is not ELF."""

# Debian multiarch triplets, by (machine, class) as elf.py names them.
_TRIPLETS: dict[tuple[str, str], tuple[str, ...]] = {
    ("x86_64", "ELF64"): ("x86_64-linux-gnu",),
    ("x86_64", "ELF32"): ("x86_64-linux-gnux32",),
    ("386", "ELF32"): ("i386-linux-gnu",),
    ("aarch64", "ELF64"): ("aarch64-linux-gnu",),
    ("arm", "ELF32"): ("arm-linux-gnueabihf", "arm-linux-gnueabi"),
    ("ppc64", "ELF64"): ("powerpc64le-linux-gnu", "powerpc64-linux-gnu"),
    ("s390", "ELF64"): ("s390x-linux-gnu",),
    ("riscv", "ELF64"): ("riscv64-linux-gnu",),
    ("mips", "ELF32"): ("mipsel-linux-gnu", "mips-linux-gnu"),
    ("mips", "ELF64"): ("mips64el-linux-gnuabi64",),
}
_PLATFORMS = {"x86_64": "x86_64", "386": "i686", "aarch64": "aarch64", "arm": "v7l"}


@dataclass(frozen=True)
class LoadedObject:
    """An object in a load chain: the program, or a library some object needed."""

    path: str
    """Its path inside the source, as the loader found it ($ORIGIN is its folder)."""
    elf: ElfInfo
    loader: LoadedObject | None = None
    """Who loaded it (its DT_RPATH is inherited down the chain); ``None``: the program."""


def parse_ld_so_cache(data: bytes) -> dict[str, list[str]]:
    """soname → paths in file order, from an ``ld.so.cache`` (new or old+new format)."""
    start = 0
    if data.startswith(_CACHE_MAGIC_OLD):
        # Old header: magic (padded to 12), nlibs, nlibs 12-byte entries; the new-format
        # cache follows, aligned to 8.
        if len(data) < 16:
            return {}
        (old_count,) = struct.unpack_from("<I", data, 12)
        start = 16 + old_count * _OLD_ENTRY
        start = (start + 7) // 8 * 8
    if data[start : start + len(_CACHE_MAGIC_NEW)] != _CACHE_MAGIC_NEW:
        return {}
    if len(data) < start + _NEW_HEADER:
        return {}
    flags = data[start + 28]
    order = ">" if flags == 3 else "<"  # 2: little endian, 3: big endian, 0: unknown
    (count,) = struct.unpack_from(order + "I", data, start + 20)
    table = data[start:]  # string offsets are relative to the new header
    found: dict[str, list[str]] = {}
    hwcaps: dict[str, list[str]] = {}
    for index in range(count):
        at = _NEW_HEADER + index * _NEW_ENTRY
        if at + _NEW_ENTRY > len(table):
            break
        _flags, key, value, _osversion, hwcap = struct.unpack_from(order + "iIIIQ", table, at)
        name, path = _cstring(table, key), _cstring(table, value)
        if name and path:
            # A glibc-hwcaps entry (x86-64-v3 …) is used only on CPUs that have those
            # features; the capture cannot know the target CPU, so the baseline comes first.
            (hwcaps if hwcap else found).setdefault(name, []).append(path)
    for name, paths in hwcaps.items():
        found.setdefault(name, []).extend(paths)
    return found


def _cstring(data: bytes, offset: int) -> str:
    """The NUL-terminated string at ``offset``; "" when there is none within PATH_MAX
    (every entry of a hostile cache may point at one endless string: no copy of it each)."""
    if offset >= len(data):
        return ""
    end = data.find(b"\0", offset, offset + _PATH_MAX)
    return "" if end < 0 else escape_bytes(data[offset:end])  # a path: recorded form


class LdSoCache:
    """The loader's cache for one source: ``/etc/ld.so.cache``, else ``ld.so.conf``."""

    def __init__(self, source: Source) -> None:
        self.entries: dict[str, list[str]] | None = None
        self.conf_dirs: list[str] = []
        try:
            data = source.read_bytes("/etc/ld.so.cache")
        except SourceReadError:  # the loader too goes on without its cache, silently
            data = b""
        if data:
            self.entries = parse_ld_so_cache(data)
        if not self.entries:
            self.entries = None
            self.conf_dirs = read_ld_so_conf(source)


def read_ld_so_conf(source: Source, path: str = "/etc/ld.so.conf") -> list[str]:
    """The folders listed in ``ld.so.conf``, following ``include`` globs, in order."""
    dirs: list[str] = []
    seen: set[str] = set()

    def visit(conf: str, depth: int) -> None:
        if depth > _MAX_CONF_DEPTH or conf in seen:
            return
        seen.add(conf)
        try:
            text = source.read_text(conf)
        except SourceReadError:  # as ldconfig: a conf it cannot read adds no folder
            return
        for raw in text.splitlines():
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            word, _, rest = line.partition(" ")
            if word == "include":
                for pattern in rest.split():
                    full = posixpath.join(posixpath.dirname(conf), pattern)
                    # An unlistable include folder adds nothing, as for ldconfig.
                    for match in expand_glob(source, full, problems=[]):
                        visit(match, depth + 1)
            elif word == "hwcap":
                continue
            else:
                for word_ in line.replace(",", " ").replace(":", " ").split():
                    item = word_.split("=", 1)[0].rstrip("/") or "/"
                    if item.startswith("/") and item not in dirs:
                        dirs.append(item)

    visit(path, 0)
    return dirs


class Resolver:
    """Resolve needed names inside one source; caches ELF facts and folder lookups."""

    def __init__(self, source: Source, cache: HashCache | None = None) -> None:
        self.source = source
        self.cache = cache
        """Remembers ELF facts across captures (by the same key as the file's hash)."""
        self._ld_so_cache: LdSoCache | None = None
        self._elf: dict[str, ElfInfo | SourceReadError | None] = {}
        self._exists: dict[str, bool] = {}
        self._stat: dict[str, os.stat_result] = {}
        self._real_dirs: dict[str, str] = {}
        self._real_paths: dict[str, str] = {}
        self._listings: dict[str, frozenset[str] | None] = {}
        self._musl_paths: dict[str, list[str]] = {}
        env = source.environ if source.is_live else {}
        raw = env.get("LD_LIBRARY_PATH", "")
        self.ld_library_path = [d for d in raw.replace(";", ":").split(":") if d.startswith("/")]

    @property
    def ld_so_cache(self) -> LdSoCache:
        if self._ld_so_cache is None:
            self._ld_so_cache = LdSoCache(self.source)
        return self._ld_so_cache

    def elf(self, inner: str) -> ElfInfo | None:
        """ELF facts of a file (cached by path); raises :class:`SourceReadError`."""
        if inner not in self._elf:
            try:
                self._elf[inner] = self._remembered(inner) or self._read(inner)
            except SourceReadError as err:
                self._elf[inner] = err
        found = self._elf[inner]
        if isinstance(found, SourceReadError):
            raise found
        return found

    def _remembered(self, inner: str) -> ElfInfo | None:
        """ELF facts from the hash cache, when the file is unchanged since they were read."""
        if self.cache is None or not self.cache.enabled:
            return None
        try:
            st = self.source.stat(self.real_path(inner))
        except SourceReadError:
            return None
        if st is None:
            return None
        text = self.cache.facts(st, _FACTS_KIND) if stat.S_ISREG(st.st_mode) else None
        if text is None or text == "null":  # not cached, or not ELF: read it
            return None
        self._stat[inner] = st
        return ElfInfo.from_cache(text)

    def _read(self, inner: str) -> ElfInfo | None:
        content, st = self.source.open_bytes(inner)
        with content:
            info = parse_elf_bytes(content, inner)
        self._stat[inner] = st
        if self.cache is not None:
            self.cache.remember_facts(st, _FACTS_KIND, "null" if info is None else info.to_cache())
        return info

    def stat(self, inner: str) -> os.stat_result | None:
        """The ``fstat`` taken when :meth:`elf` opened ``inner`` (``None``: never opened)."""
        return self._stat.get(inner)

    def real_path(self, inner: str) -> str:
        """``inner`` with every symlink resolved inside the source, folders memoised.

        Thousands of files share a handful of folders; resolving each folder once and
        then only checking whether the last component is a link saves most ``lstat`` calls.
        """
        known = self._real_paths.get(inner)
        if known is None:
            known = self._real_paths[inner] = self._real_path(inner)
        return known

    def _real_path(self, inner: str) -> str:
        folder, name = posixpath.split(inner)
        real_folder = self._real_dirs.get(folder)
        if real_folder is None:
            real_folder = self._real_dirs[folder] = self.source.resolve(folder).inner
        candidate = posixpath.join(real_folder, name)
        try:  # the folder is already resolved: one lstat of the last component
            st = self.source.lstat(candidate) if name else None
        except SourceReadError:
            st = None
        is_link = st is not None and stat.S_ISLNK(st.st_mode)
        return self.source.resolve(candidate).inner if is_link else candidate

    def _names_in(self, folder: str) -> frozenset[str] | None:
        """The names in a folder (``None`` when it cannot be listed), listed once."""
        if folder not in self._listings:
            try:
                self._listings[folder] = frozenset(self.source.listdir(folder))
            except SourceReadError:
                self._listings[folder] = None
        return self._listings[folder]

    def remember(self, inner: str, info: ElfInfo | None, st: os.stat_result) -> None:
        """Keep ELF facts another probe already read, so the file is not parsed twice."""
        self._elf[inner] = info
        self._stat[inner] = st

    def _compatible(self, candidate: str, abi: tuple[str, str, bool]) -> bool:
        folder, name = posixpath.split(candidate)
        names = self._names_in(folder)
        if names is not None and name not in names:
            return False  # one listing per folder instead of one failed open per candidate
        try:  # opening is the existence check: a missing file raises SourceReadError
            info = self.elf(candidate)
        except SourceReadError:
            return False
        return info is not None and info.abi == abi

    # -- the search -------------------------------------------------------------------------

    def resolve(self, name: str, requester: LoadedObject) -> str | None:
        """The path (inside the source) that ``name`` loads for ``requester``, or ``None``."""
        abi = requester.elf.abi
        if "/" in name:
            # A relative one is relative to the process's working folder, which a capture
            # cannot know; the requester's folder is the likeliest place (and is rare).
            path = name if name.startswith("/") else posixpath.join(self._origin(requester), name)
            return posixpath.normpath(path) if self._compatible(path, abi) else None
        for folder in self.search_dirs(requester):
            candidate = posixpath.join(folder, name)
            if self._compatible(candidate, abi):
                return candidate
        if not self._is_musl(requester):
            entries = self.ld_so_cache.entries
            if entries is not None:
                for candidate in entries.get(name, ()):
                    if self._compatible(candidate, abi):
                        return candidate
            for folder in self._default_dirs(requester.elf):
                candidate = posixpath.join(folder, name)
                if self._compatible(candidate, abi):
                    return candidate
        return None

    def search_dirs(self, requester: LoadedObject) -> list[str]:
        """The folders searched before the cache and default folders, in order."""
        if self._is_musl(requester):
            dirs = list(self.ld_library_path)
            chain: LoadedObject | None = requester
            while chain is not None:
                for path in (chain.elf.rpath, chain.elf.runpath):
                    dirs.extend(self._expand(path, chain))
                chain = chain.loader
            dirs.extend(self._musl_system_dirs(requester))
            return _unique(dirs)
        dirs = []
        if requester.elf.runpath is None:
            chain = requester
            while chain is not None:
                if chain.elf.runpath is None:  # an object's RPATH counts only without RUNPATH
                    dirs.extend(self._expand(chain.elf.rpath, chain))
                chain = chain.loader
        dirs.extend(self.ld_library_path)
        dirs.extend(self._expand(requester.elf.runpath, requester))
        if self.ld_so_cache.entries is None:
            dirs.extend(self.ld_so_cache.conf_dirs)
        return _unique(dirs)

    def _origin(self, obj: LoadedObject) -> str:
        return posixpath.dirname(obj.path) or "/"

    def _expand(self, value: str | None, obj: LoadedObject) -> list[str]:
        if not value:
            return []
        out = []
        for entry in value.split(":"):
            if not entry:
                continue
            item = entry
            for token, replacement in (
                ("ORIGIN", self._origin(obj)),
                ("LIB", self._lib_word(obj.elf)),
                ("PLATFORM", _PLATFORMS.get(obj.elf.machine, obj.elf.machine)),
            ):
                item = item.replace("${" + token + "}", replacement)
                item = item.replace("$" + token, replacement)
            # Not normalised: ``bin/../lib`` climbs from where a symlinked ``bin`` points,
            # as the kernel would; the loader also uses the string as it is.
            if item.startswith("/"):
                out.append(item.rstrip("/") or "/")
        return out

    def _lib_word(self, elf: ElfInfo) -> str:
        for triplet in _TRIPLETS.get((elf.machine, elf.elf_class), ()):
            if self._is_dir(f"/lib/{triplet}"):
                return f"lib/{triplet}"
        return "lib64" if elf.elf_class == "ELF64" and self._is_dir("/lib64") else "lib"

    def _is_dir(self, inner: str) -> bool:
        key = inner + "/"
        known = self._exists.get(key)
        if known is None:
            known = self._exists[key] = self.source.is_dir(inner)
        return known

    def _default_dirs(self, elf: ElfInfo) -> list[str]:
        dirs = []
        for triplet in _TRIPLETS.get((elf.machine, elf.elf_class), ()):
            dirs += [f"/lib/{triplet}", f"/usr/lib/{triplet}"]
        if elf.elf_class == "ELF64":
            dirs += ["/lib64", "/usr/lib64"]
        dirs += ["/lib", "/usr/lib"]
        return dirs

    # -- musl -------------------------------------------------------------------------------

    def _is_musl(self, obj: LoadedObject) -> bool:
        while obj.loader is not None:
            obj = obj.loader
        interp = obj.elf.interpreter or ""
        return "ld-musl-" in posixpath.basename(interp)

    def _musl_system_dirs(self, obj: LoadedObject) -> list[str]:
        while obj.loader is not None:
            obj = obj.loader
        base = posixpath.basename(obj.elf.interpreter or "")
        arch = base[len("ld-musl-") :].split(".so", 1)[0]
        if arch not in self._musl_paths:
            dirs = ["/lib", "/usr/local/lib", "/usr/lib"]
            try:
                text = self.source.read_text(f"/etc/ld-musl-{arch}.path")
            except SourceReadError:
                text = None
            if text is not None:
                dirs = [d for d in text.replace("\n", ":").split(":") if d.startswith("/")]
            self._musl_paths[arch] = dirs
        return self._musl_paths[arch]


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def resolver_for(ctx: CaptureContext) -> Resolver:
    """The capture's one resolver: binaries and libraries share its ELF and folder caches."""
    return ctx.shared("ldso", lambda: Resolver(ctx.source, cache_for(ctx)))
