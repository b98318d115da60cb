"""Offline interpreters (``--root``): what files tell about a Python, without running it.

Nothing in the rootfs is executed. Every path goes through :class:`Source`, so a symlink
such as ``usr/bin/python3 -> /usr/bin/python3.11`` resolves inside the root, never on the
host. Sources of each fact, best first:

- version: ``pyvenv.cfg`` (``version`` / ``version_info``), ``include/pythonX.Y/patchlevel.h``
  (``PY_VERSION``), the executable's name (``python3.11``) or the ``lib/pythonX.Y`` folders
  (X.Y only), then dpkg's record of ``pythonX.Y-minimal`` (its upstream part);
- SOABI, EXT_SUFFIX, MULTIARCH, PLATLIBDIR, MACHDEP: the ``_sysconfigdata*.py`` dict, read
  with :func:`ast.literal_eval` (never imported);
- platform_machine: the ``e_machine`` field of the executable's ELF header;
- sys.path and site-packages: computed the way ``getpath`` and ``site`` would (stdlib zip,
  stdlib, lib-dynload, then site/dist-packages that exist, then ``.pth`` path lines).

What cannot be known from files (``platform_release``, ``platform_version``, PyPy's own
version) is ``null``; a fact that had to be guessed is never presented as read.
Components carry ``"source": "files"``.
"""

from __future__ import annotations

import ast
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

from envpack.errors import UsageError
from envpack.snapshot import os_arch
from envpack.snapshot.context import CaptureContext
from envpack.snapshot.dpkg_status import installed_packages
from envpack.snapshot.source import DEFAULT_PATH, Source, SourceReadError

__all__ = [
    "DEFAULT_PYTHONS",
    "describe_offline",
    "elf_machine",
    "parse_pyvenv_cfg",
    "parse_sysconfigdata",
    "parse_version",
    "probe",
    "resolve_python_arg",
]

SECTION = "interpreters"
DEFAULT_PYTHONS = ("/usr/local/bin/python3", "/usr/bin/python3")
"""Looked for, in this order, when no ``--python`` is given under ``--root``."""
_SYSCONFIGDATA_LIMIT = 4 * 1024 * 1024
_SMALL_FILE_LIMIT = 256 * 1024

_LEVELS = {"a": "alpha", "b": "beta", "c": "candidate", "rc": "candidate"}
_VERSION_RE = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:(a|b|rc|c)(\d+))?")
_DOTTED_INFO_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)\.(alpha|beta|candidate|final)\.(\d+)$")
_PY_VERSION_RE = re.compile(r'#define\s+PY_VERSION\s+"([^"]+)"')
_VERSIONED_NAME_RE = re.compile(r"^(python|pypy)(\d)\.(\d+)$")
"""``python3.11`` or ``pypy3.10``: an executable's or a ``lib/`` folder's name."""


def probe(ctx: CaptureContext) -> None:
    """Fill ``interpreters`` from the files of a rootfs."""
    source = ctx.source
    section = ctx.sections.setdefault(SECTION, {})
    if ctx.options.pythons:
        keys: list[str] = []
        for arg in ctx.options.pythons:
            key = resolve_python_arg(source, arg)
            if key not in keys:
                keys.append(key)
    else:
        # A dangling default (a link to a host path the root lacks) is reported, not skipped.
        defaults = source.default_pythons() or DEFAULT_PYTHONS
        keys = [path for path in defaults if _present(source, path)]
        if not keys:
            ctx.issue(
                SECTION,
                "",
                "no /usr/local/bin/python3 or /usr/bin/python3 in the root; name one with --python",
            )
    for key in keys:
        ctx.progress(f"reading {key}")
        problems: list[str] = []
        try:
            component = describe_offline(source, key, problems)
        except SourceReadError as err:
            ctx.issue(SECTION, key, str(err))
            continue
        for problem in problems:
            ctx.issue(SECTION, key, problem)
        # The first --python is primary even if unreadable (then none is): the user chose.
        # Among the defaults, the first readable one is.
        if ctx.options.pythons:
            component["primary"] = key == keys[0]
        else:
            component["primary"] = not any(c.get("primary") for c in section.values())
        section[key] = component


def _present(source: Source, path: str) -> bool:
    """The path exists as an entry (a dangling or looping link counts: it gets an issue)."""
    try:
        return source.lstat(path) is not None
    except SourceReadError:
        return True


def resolve_python_arg(source: Source, arg: str) -> str:
    """The inner path for a ``--python`` value under ``--root``, or :class:`UsageError`.

    A path is taken inside the root (relative ones from its top); a virtualenv folder
    stands for its ``bin/python``; a bare name is looked up on a standard PATH.
    """
    if "/" not in arg:
        for folder in DEFAULT_PATH.split(":"):
            candidate = posixpath.join(folder, arg)
            if source.is_file(candidate):
                return candidate
        raise UsageError(f"--python {arg}: not found on PATH inside the root")
    inner = posixpath.normpath("/" + arg.lstrip("/"))
    if source.is_dir(inner):
        candidate = posixpath.join(inner, "bin", "python")
        if not source.exists(candidate):
            raise UsageError(f"--python {arg}: a folder without bin/python")
        return candidate
    if not source.exists(inner):
        if _present(source, inner):
            try:
                target = source.resolve(inner).inner
            except SourceReadError as err:
                raise UsageError(f"--python {arg}: {err}") from err
            raise UsageError(f"--python {arg}: a symlink to {target}, which is not in the root")
        raise UsageError(f"--python {arg}: no such file")
    return inner


# -- one interpreter -----------------------------------------------------------------------


@dataclass
class _Facts:
    """What has been learnt so far about one interpreter."""

    implementation: str = "cpython"
    major_minor: tuple[int, int] | None = None
    version: str | None = None
    version_info: list[Any] | None = None
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def xy(self) -> tuple[int, int]:
        """X.Y, once known (describe_offline stops before anything needs it unknown)."""
        if self.major_minor is None:
            raise SourceReadError("Python version not known")
        return self.major_minor


def describe_offline(source: Source, key: str, problems: list[str]) -> dict[str, Any]:
    """The component for the interpreter at inner path ``key`` (``problems`` gets notes)."""
    real = source.resolve(key).inner
    if not source.is_file(real):
        raise SourceReadError(f"{key}: resolves to {real}, which is not a file in the root")
    facts = _Facts()
    venv_dir, cfg = _find_pyvenv_cfg(source, key)
    _facts_from_names(facts, key, real, cfg)
    if venv_dir is not None and cfg is not None:
        base_prefix = _base_prefix_of_venv(source, cfg, real, facts)
        prefix = venv_dir
    else:
        base_prefix = _find_prefix(source, posixpath.dirname(real), facts)
        prefix = base_prefix
    if facts.major_minor is None:
        facts.major_minor = _version_from_lib(source, base_prefix, facts.implementation)
    if facts.major_minor is None:
        raise SourceReadError(
            f"{key}: no version found (no pyvenv.cfg, versioned name or lib/pythonX.Y)"
        )
    for libdir in ("lib", "lib64"):  # PLATLIBDIR is in the file we are looking for
        stdlib = posixpath.join(base_prefix, libdir, posixpath.basename(_stdlib_dir("/", facts)))
        facts.config = _read_sysconfigdata(source, stdlib, problems)
        if facts.config:
            break
    if facts.version is None:
        _version_from_headers(source, base_prefix, facts)
    if facts.version is None and facts.implementation == "cpython":
        _version_from_dpkg(source, facts, problems)
    if facts.version_info is None:
        facts.version_info = list(facts.major_minor)

    if not facts.config.get("SOABI"):
        facts.config.update(_abi_from_extension_names(source, base_prefix, facts))
    machine = elf_machine(source, real)
    sys_path = _sys_path(source, facts, prefix, base_prefix, cfg, problems)
    soabi = facts.config.get("SOABI") or None
    ext_suffix = facts.config.get("EXT_SUFFIX") or facts.config.get("SO") or None
    major, minor = facts.xy
    return {
        "implementation": facts.implementation,
        "version": facts.version or f"{major}.{minor}",
        "version_info": facts.version_info,
        "executable": key,
        "real_executable": real,
        "prefix": prefix,
        "base_prefix": base_prefix,
        "virtualenv": venv_dir is not None,
        "platform": f"linux-{machine}" if machine else None,
        "soabi": soabi,
        "ext_suffix": ext_suffix,
        "abi_tag": _abi_tag(facts, soabi),
        "interpreter_tag": ("pp" if facts.implementation == "pypy" else "cp") + f"{major}{minor}",
        "sys_path": sys_path,
        "site_packages": _site_packages(source, sys_path, facts, prefix, base_prefix, cfg),
        "markers": _markers(facts, machine),
        "source": "files",
    }


def _facts_from_names(facts: _Facts, key: str, real: str, cfg: dict[str, str] | None) -> None:
    name = posixpath.basename(real)
    if name.startswith("pypy") or posixpath.basename(key).startswith("pypy"):
        facts.implementation = "pypy"
    if cfg is not None:
        _version_from_cfg(facts, cfg)
    exe_version = _VERSIONED_NAME_RE.match(name)
    if facts.major_minor is None and exe_version:
        facts.major_minor = (int(exe_version.group(2)), int(exe_version.group(3)))


# -- pyvenv.cfg -----------------------------------------------------------------------------


def parse_pyvenv_cfg(text: str) -> dict[str, str]:
    """``key = value`` lines, keys lower-cased, as ``site.venv`` reads them."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep:
            values[name.strip().lower()] = value.strip()
    return values


def _find_pyvenv_cfg(source: Source, key: str) -> tuple[str | None, dict[str, str] | None]:
    # Like CPython: next to the executable as invoked, or one folder up (bin/..).
    bin_dir = posixpath.dirname(key)
    for folder in (bin_dir, posixpath.dirname(bin_dir)):
        path = posixpath.join(folder, "pyvenv.cfg")
        if source.is_file(path):
            text = source.read_text(path, limit=_SMALL_FILE_LIMIT)
            return folder, parse_pyvenv_cfg(text)
    return None, None


def _version_from_cfg(facts: _Facts, cfg: dict[str, str]) -> None:
    if cfg.get("implementation", "").lower() == "pypy":
        facts.implementation = "pypy"
    dotted = _DOTTED_INFO_RE.match(cfg.get("version_info", ""))
    if dotted:  # virtualenv: 2.7.18.final.0
        level = dotted.group(4)
        info = [int(dotted.group(1)), int(dotted.group(2)), int(dotted.group(3)), level]
        info.append(int(dotted.group(5)))
        _set_version(facts, info)
        return
    for field_name in ("version", "version_info"):
        parsed = parse_version(cfg.get(field_name, ""))
        if parsed is not None and len(parsed) == 5:
            _set_version(facts, parsed)
            return
    if facts.implementation == "pypy":  # PyPy's venv "version" is PyPy's own, not Python's
        return
    parsed = parse_version(cfg.get("version", ""))
    if parsed is not None:
        facts.major_minor = (parsed[0], parsed[1])


def parse_version(text: str) -> list[Any] | None:
    """``"3.13.0rc1"`` → ``[3, 13, 0, "candidate", 1]``; ``"3.11"`` → ``[3, 11]``."""
    match = _VERSION_RE.match(text.strip())
    if not match:
        return None
    major, minor, micro, level, serial = match.groups()
    if micro is None:
        return [int(major), int(minor)]
    if level is None:
        return [int(major), int(minor), int(micro), "final", 0]
    return [int(major), int(minor), int(micro), _LEVELS[level], int(serial)]


def _set_version(facts: _Facts, info: list[Any]) -> None:
    facts.version_info = info
    facts.major_minor = (info[0], info[1])
    facts.version = _pep440(info)


def _pep440(info: list[Any]) -> str:
    text = f"{info[0]}.{info[1]}.{info[2]}"
    if info[3] != "final":
        text += {"alpha": "a", "beta": "b", "candidate": "rc"}[info[3]] + str(info[4])
    return text


# -- prefixes -------------------------------------------------------------------------------


def _stem(facts: _Facts) -> str:
    return "pypy" if facts.implementation == "pypy" else "python"


def _stdlib_dir(prefix: str, facts: _Facts) -> str:
    major, minor = facts.xy
    libdir = "lib" if facts.implementation == "pypy" else _platlibdir(facts)
    return posixpath.join(prefix, libdir, f"{_stem(facts)}{major}.{minor}")


def _platlibdir(facts: _Facts) -> str:
    value = facts.config.get("PLATLIBDIR")
    return value if isinstance(value, str) and value and "/" not in value else "lib"


def _find_prefix(source: Source, start: str, facts: _Facts) -> str:
    """``getpath``'s landmark search: the first parent of ``start`` with the stdlib."""
    folder = posixpath.normpath(start)
    while True:
        if _version_from_lib(source, folder, facts.implementation, facts.major_minor):
            return folder
        parent = posixpath.dirname(folder)
        if parent == folder:
            # No landmark: the conventional bin/.. is the best guess left.
            return posixpath.dirname(posixpath.normpath(start)) or "/"
        folder = parent


def _version_from_lib(
    source: Source, prefix: str, implementation: str, wanted: tuple[int, int] | None = None
) -> tuple[int, int] | None:
    """X.Y of a ``lib/pythonX.Y`` (or ``lib/pypyX.Y``) holding ``os.py`` under ``prefix``."""
    stem = "pypy" if implementation == "pypy" else "python"
    found: list[tuple[int, int]] = []
    for libdir in ("lib", "lib64"):
        base = posixpath.join(prefix, libdir)
        for name in source.listdir(base):
            match = _VERSIONED_NAME_RE.match(name)
            if not match or match.group(1) != stem:
                continue
            version = (int(match.group(2)), int(match.group(3)))
            if wanted is not None and version != wanted:
                continue
            if source.is_file(posixpath.join(base, name, "os.py")):
                found.append(version)
    # Several stdlibs side by side (python3.9 and python3.11 in /usr/lib): the newest is
    # the likely target of an unversioned name; a versioned name never gets here.
    return max(found) if found else None


def _base_prefix_of_venv(source: Source, cfg: dict[str, str], real: str, facts: _Facts) -> str:
    declared = cfg.get("base-prefix")
    if declared and declared.startswith("/"):
        return posixpath.normpath(declared)
    # home is the base's bin folder (venv) or its prefix (virtualenv 20 on Python 2);
    # the landmark search from there finds the prefix either way.
    home = cfg.get("home", "")
    if home.startswith("/"):
        prefix = _find_prefix(source, home, facts)
        if _version_from_lib(source, prefix, facts.implementation, facts.major_minor):
            return prefix
    return _find_prefix(source, posixpath.dirname(real), facts)


# -- versions from headers and dpkg ---------------------------------------------------------


def _version_from_headers(source: Source, prefix: str, facts: _Facts) -> None:
    major, minor = facts.xy
    include = posixpath.join(prefix, "include")
    stem = f"{_stem(facts)}{major}.{minor}"
    for name in source.listdir(include):
        # python3.11, python3.7m, python2.7: the folder may carry ABI flags.
        if name != stem and not (name.startswith(stem) and name[len(stem) :].isalpha()):
            continue
        try:
            text = source.read_text_or_none(posixpath.join(include, name, "patchlevel.h"))
        except SourceReadError:  # one of several hints at the version; the others decide
            continue
        match = _PY_VERSION_RE.search(text or "")
        parsed = parse_version(match.group(1)) if match else None
        if parsed is not None and len(parsed) == 5 and tuple(parsed[:2]) == (major, minor):
            _set_version(facts, parsed)
            return


def _version_from_dpkg(source: Source, facts: _Facts, problems: list[str]) -> None:
    major, minor = facts.xy
    wanted = {f"python{major}.{minor}-minimal", f"libpython{major}.{minor}-minimal"}
    try:
        text = source.read_text_or_none("/var/lib/dpkg/status")
    except SourceReadError as err:
        problems.append(f"dpkg status not read for the version: {err}")
        return
    for package in installed_packages([text or ""]):
        if package.name not in wanted:
            continue
        upstream = package.version.split(":", 1)[-1].rsplit("-", 1)[0]  # no epoch, revision
        parsed = parse_version(upstream.replace("~", ""))
        if parsed is not None and len(parsed) == 5 and tuple(parsed[:2]) == (major, minor):
            _set_version(facts, parsed)
            return


# -- sysconfigdata --------------------------------------------------------------------------


def _read_sysconfigdata(source: Source, stdlib: str, problems: list[str]) -> dict[str, Any]:
    names = [
        n for n in source.listdir(stdlib) if n.startswith("_sysconfigdata") and n.endswith(".py")
    ]
    # Debug builds (_sysconfigdata_d_…) are not what `pythonX.Y` loads.
    names.sort(key=lambda n: (n.startswith("_sysconfigdata_d"), n))
    for name in names:
        path = posixpath.join(stdlib, name)
        try:
            data = source.read_bytes(path, limit=_SYSCONFIGDATA_LIMIT + 1)
        except SourceReadError as err:
            problems.append(str(err))
            continue
        if len(data) > _SYSCONFIGDATA_LIMIT:
            problems.append(f"{path}: larger than {_SYSCONFIGDATA_LIMIT} bytes; not read")
            continue
        try:
            return parse_sysconfigdata(data.decode("utf-8", "replace"))
        except ValueError as err:
            problems.append(f"{path}: {err}")
    return {}


def parse_sysconfigdata(text: str) -> dict[str, Any]:
    """The literal parts of ``build_time_vars`` in a ``_sysconfigdata*.py`` text.

    CPython writes one dict literal; PyPy's entries include expressions (``so_ext``), which
    are skipped: only literal values are kept, nothing is evaluated.
    """
    try:
        tree = ast.parse(text)
    except SyntaxError as err:
        raise ValueError(f"not Python source (line {err.lineno})") from err
    except (RecursionError, MemoryError) as err:  # a hostile file nested too deeply
        raise ValueError("nested too deeply to read") from err
    for node in tree.body:
        if not isinstance(node, ast.Assign) or not isinstance(node.value, ast.Dict):
            continue
        if not any(isinstance(t, ast.Name) and t.id == "build_time_vars" for t in node.targets):
            continue
        values: dict[str, Any] = {}
        for key_node, value_node in zip(node.value.keys, node.value.values):
            try:
                name = ast.literal_eval(key_node) if key_node is not None else None
                value = ast.literal_eval(value_node)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                continue
            if isinstance(name, str):
                values[name] = value
        return values
    raise ValueError("no build_time_vars dict")


_EXTENSION_RE = re.compile(r"\.((cpython|pypy\d+)-[A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)*)\.so$")


def _abi_from_extension_names(source: Source, prefix: str, facts: _Facts) -> dict[str, str]:
    """SOABI and EXT_SUFFIX from the stdlib's own extension modules' file names.

    For builds without a readable sysconfigdata (PyPy's is code, not a literal):
    ``_ssl.cpython-311-x86_64-linux-gnu.so`` tells both.
    """
    stdlib = _stdlib_dir(prefix, facts)
    for folder in (posixpath.join(stdlib, "lib-dynload"), stdlib):
        for name in source.listdir(folder):
            match = _EXTENSION_RE.search(name)
            if not match:
                continue
            tag = match.group(1)
            # CPython's SOABI is the whole tag; PyPy's stops before the platform part.
            soabi = tag if tag.startswith("cpython-") else "-".join(tag.split("-")[:2])
            return {"SOABI": soabi, "EXT_SUFFIX": f".{tag}.so"}
    return {}


# -- ELF ------------------------------------------------------------------------------------


def elf_machine(source: Source, path: str) -> str | None:
    """``platform.machine()`` for the ELF file at ``path``, from its header; else None.

    The same table as the ``os`` section's architecture, so the two never disagree.
    """
    try:
        return os_arch.elf_machine(source.read_bytes(path, limit=20))
    except (SourceReadError, os_arch.ArchProblem):
        return None


# -- sys.path -------------------------------------------------------------------------------


def _is_debian_site(source: Source, stdlib: str) -> bool:
    """Debian patches site.py to use dist-packages; read it to know which scheme applies."""
    try:
        text = source.read_text_or_none(posixpath.join(stdlib, "site.py"))
    except SourceReadError:  # no readable site.py: the upstream scheme, as Python would
        return False
    return text is not None and "dist-packages" in text


def _site_dirs(prefix: str, facts: _Facts, *, debian: bool, in_venv: bool) -> list[str]:
    major, minor = facts.xy
    versioned = f"{_stem(facts)}{major}.{minor}"
    libdirs = [_platlibdir(facts)]
    if libdirs[0] != "lib":
        libdirs.append("lib")
    if not debian:
        dirs = [posixpath.join(prefix, lib, versioned, "site-packages") for lib in libdirs]
        if major == 2:
            dirs.append(posixpath.join(prefix, "lib", "site-python"))
        return dirs
    dirs = []
    if in_venv:
        dirs.append(posixpath.join(prefix, "lib", versioned, "site-packages"))
    dirs.append(posixpath.join(prefix, "local/lib", versioned, "dist-packages"))
    dirs.append(posixpath.join(prefix, "lib", f"python{major}", "dist-packages"))
    if facts.implementation != "pypy":
        dirs.extend(posixpath.join(prefix, lib, versioned, "dist-packages") for lib in libdirs)
    return dirs


def _stdlib_path(source: Source, base_prefix: str, facts: _Facts) -> list[str]:
    major, minor = facts.xy
    stdlib = _stdlib_dir(base_prefix, facts)
    if facts.implementation == "pypy":
        return [stdlib]
    libdir = posixpath.dirname(stdlib)
    entries = [posixpath.join(libdir, f"python{major}{minor}.zip"), stdlib]
    if major == 2:
        machdep = facts.config.get("MACHDEP") or "linux2"
        entries += [posixpath.join(stdlib, f"plat-{machdep}")]
        entries += [posixpath.join(stdlib, "lib-tk"), posixpath.join(stdlib, "lib-old")]
    entries.append(posixpath.join(stdlib, "lib-dynload"))
    return entries


def _sys_path(
    source: Source,
    facts: _Facts,
    prefix: str,
    base_prefix: str,
    cfg: dict[str, str] | None,
    problems: list[str],
) -> list[str]:
    path = _stdlib_path(source, base_prefix, facts)
    debian = _is_debian_site(source, _stdlib_dir(base_prefix, facts))
    in_venv = prefix != base_prefix
    prefixes = [prefix]
    if in_venv and (cfg or {}).get("include-system-site-packages", "").lower() == "true":
        prefixes.append(base_prefix)
    for each in prefixes:
        for folder in _site_dirs(each, facts, debian=debian, in_venv=in_venv):
            if folder not in path and source.is_dir(folder):
                path.append(folder)
                _add_pth_lines(source, folder, path, problems)
    return path


def _add_pth_lines(source: Source, folder: str, path: list[str], problems: list[str]) -> None:
    """``site.addpackage``: path lines of ``*.pth`` files (import lines are code: skipped)."""
    try:
        names = source.listdir(folder)
    except SourceReadError:
        # The folder stays on sys.path: the python_packages probe lists it and records
        # why it cannot (one issue, where the packages go missing).
        return
    for name in names:
        if not name.endswith(".pth") or name.startswith("."):
            continue
        try:
            text = source.read_text(posixpath.join(folder, name), limit=_SMALL_FILE_LIMIT)
        except SourceReadError as err:  # site.py skips it too, but sys.path may lack entries
            problems.append(f"{err}; its sys.path lines are not known")
            continue
        for line in text.splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            if line.startswith(("import ", "import\t")):
                continue
            entry = posixpath.normpath(posixpath.join(folder, line.rstrip()))
            if entry not in path and source.exists(entry):
                path.append(entry)


def _site_packages(
    source: Source,
    sys_path: list[str],
    facts: _Facts,
    prefix: str,
    base_prefix: str,
    cfg: dict[str, str] | None,
) -> list[str]:
    """The site folders on sys.path, plus any sys.path folder holding distributions."""
    known: set[str] = set()
    for each in {prefix, base_prefix}:
        for debian in (True, False):
            known.update(_site_dirs(each, facts, debian=debian, in_venv=True))
    found = []
    for entry in sys_path:
        if not source.is_dir(entry):
            continue
        if entry in known or any(
            n.endswith((".dist-info", ".egg-info")) for n in _names_or_none(source, entry)
        ):
            found.append(entry)
    return found


def _names_or_none(source: Source, folder: str) -> list[str]:
    # Unlistable: not taken for a site folder here; it is on sys_path, where the
    # python_packages probe lists it and records why it cannot.
    try:
        return source.listdir(folder)
    except SourceReadError:
        return []


# -- tags and markers -----------------------------------------------------------------------


def _abi_tag(facts: _Facts, soabi: str | None) -> str | None:
    if soabi:
        parts = soabi.split("-")
        if facts.implementation == "cpython" and soabi.startswith("cpython-") and len(parts) > 1:
            return "cp" + parts[1]
        return soabi.replace(".", "_").replace("-", "_")
    if facts.implementation != "cpython" or not facts.config or facts.major_minor is None:
        return None
    major, minor = facts.major_minor
    flags = "d" if facts.config.get("Py_DEBUG") else ""
    if (major, minor) < (3, 8) and facts.config.get("WITH_PYMALLOC", 1):
        flags += "m"
    if (major, minor) < (3, 3) and facts.config.get("Py_UNICODE_SIZE") == 4:
        flags += "u"
    return f"cp{major}{minor}{flags}"


def _markers(facts: _Facts, machine: str | None) -> dict[str, Any]:
    major, minor = facts.xy
    info = facts.version_info or []
    if major == 2:  # PEP 508 on Python 2: no sys.implementation
        impl_name: str | None = ""
        impl_version: str | None = "0"
    elif facts.implementation == "pypy":
        impl_name, impl_version = "pypy", None  # PyPy's own version is not in these files
    else:
        impl_name = "cpython"
        impl_version = None
        if len(info) == 5:
            impl_version = f"{info[0]}.{info[1]}.{info[2]}"
            if info[3] != "final":
                impl_version += str(info[3])[0] + str(info[4])
    machdep = facts.config.get("MACHDEP")
    return {
        "implementation_name": impl_name,
        "implementation_version": impl_version,
        "os_name": "posix",
        "platform_machine": machine,
        "platform_release": None,
        "platform_system": "Linux",
        "platform_version": None,
        "python_full_version": facts.version,
        "platform_python_implementation": "PyPy" if facts.implementation == "pypy" else "CPython",
        "python_version": f"{major}.{minor}",
        "sys_platform": machdep
        if isinstance(machdep, str) and machdep
        else ("linux2" if major == 2 else "linux"),
    }
