"""Decide every file of the image from a manifest and its source: ``plan_image``.

The order of the steps is the order of precedence (the first add of a path wins): the
interpreter, the standard library, site-packages and every captured distribution's files,
the application, included binaries, config files, then the shared-library closure of all
of that with the loader and what is dlopen'd, then the generated base. Then the checks:
drift since the capture, and whether ``--user`` can reach the interpreter. Bytecode for
every ``.py`` the image ships compiles in worker processes meanwhile (from when the file
set is known until the checks are done).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import shlex
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from envpack.errors import PackError
from envpack.manifest import Component, Manifest, dumps
from envpack.pack import bytecode
from envpack.pack.basefiles import GENERATED, NSSWITCH, add_base_files
from envpack.pack.closure import Closure, find_closure, looks_like_elf_name, new_resolver
from envpack.pack.dlopen import dlopen_extras, uses_iconv
from envpack.pack.dpkgdb import APK_INSTALLED, DPKG_STATUS, filter_apk_installed, filter_dpkg_status
from envpack.pack.drift import check_drift, drift_message
from envpack.pack.exclude import ExcludeRules
from envpack.pack.fileset import FileSet
from envpack.pack.ldcache import write_ld_so_cache
from envpack.pack.ldentries import cache_entries
from envpack.pack.planmodel import (
    DEFAULT_EPOCH,
    Drifted,
    Excluded,
    Plan,
    PlannedFile,
    PlanOptions,
)
from envpack.pack.preflight import (
    check_release,
    check_user_reach,
    parse_user,
    primary_interpreter,
)
from envpack.redact import holds_secrets
from envpack.snapshot.hashcache import HashCache, default_cache_dir
from envpack.snapshot.ldso import Resolver
from envpack.snapshot.owners import OwnerIndex
from envpack.snapshot.record import record_rows, resolve_record_path
from envpack.snapshot.source import DEFAULT_PATH, Source, SourceReadError

__all__ = [
    "DEFAULT_EPOCH",
    "Drifted",
    "Excluded",
    "Plan",
    "PlanOptions",
    "PlannedFile",
    "plan_image",
]

_PENDING = "syslib:"


class _Planner:
    """One plan in the making (the steps share the file set and what they learned)."""

    def __init__(self, manifest: Manifest, source: Source, options: PlanOptions) -> None:
        self.manifest = manifest
        self.source = source
        self.options = options
        self.notes: list[str] = []
        self.interp = primary_interpreter(manifest)
        self.executable: str = self.interp["executable"]
        real = self.interp.get("real_executable")
        self.real_executable: str = real if isinstance(real, str) else self.executable
        self.prefix = str(self.interp.get("prefix") or "")
        self.base_prefix = str(self.interp.get("base_prefix") or self.prefix)
        version = str(self.interp.get("version") or "")
        self.xy = ".".join(version.split(".")[:2])
        self.cache = HashCache(options.cache_dir, enabled=options.use_cache)
        self.resolver: Resolver = new_resolver(source, self.cache)
        self.stdlib = [
            f"{self.base_prefix}/lib/python{self.xy}",
            f"{self.base_prefix}/lib64/python{self.xy}",
        ]
        # Only real site-packages folders: a 2.7 probe lists the stdlib folder there too.
        listed = [p for p in self.interp.get("site_packages") or () if isinstance(p, str)]
        self.site_packages = [
            p.rstrip("/")
            for p in dict.fromkeys([*listed, *self._sys_path()])
            if p.rstrip("/").endswith(("site-packages", "dist-packages"))
        ]
        tk = any(str(k).startswith("libtk") for k in manifest.section("libraries"))
        self.rules = ExcludeRules(
            stdlib=self.stdlib,
            site_packages=self.site_packages,
            tk_present=tk,
            globs=tuple(options.exclude),
        )
        self.files = FileSet(source, options.source_date_epoch, self.rules)
        self.dists: list[tuple[str, str]] = []
        self.binaries: set[str] = set()
        self.secret_configs: list[str] = []
        self.dlopen_added: list[str] = []
        self.env: dict[str, str] = {}
        self._host: Source | None = None

    # -- helpers ----------------------------------------------------------------------------

    def progress(self, phase: str, done: int, total: int) -> None:
        if self.options.progress is not None:
            self.options.progress(phase, done, total)

    def _sys_path(self) -> list[str]:
        return [p for p in self.interp.get("sys_path") or () if isinstance(p, str) and p]

    def _under(self, path: str, folders: Iterable[str]) -> bool:
        return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders if f)

    # -- the steps --------------------------------------------------------------------------

    def python(self) -> None:
        """The interpreter, its standard library, its virtualenv and site-packages."""
        files = self.files
        if not files.add_path(self.executable, "interpreter", "interpreter"):
            raise PackError(f"{self.executable}: the primary interpreter is not in the source")
        files.add_path(self.real_executable, "interpreter", "interpreter")
        for stdlib in self.stdlib:
            files.add_path(f"{stdlib}/lib-dynload", "interpreter", "interpreter", walk=True)
        if self.interp.get("virtualenv") and self.prefix:
            files.add_path(f"{self.prefix}/pyvenv.cfg", "interpreter", "interpreter")
        for entry in self._sys_path():
            if not (
                self._under(entry, [self.prefix, self.base_prefix]) or entry in self.site_packages
            ):
                continue  # PYTHONPATH-like entries of the capture are not the interpreter's
            group = "site-packages" if self._under(entry, self.site_packages) else "stdlib"
            files.add_path(entry, group, "interpreter", walk=True)
        if self.interp.get("virtualenv") and self.prefix:
            files.add_path(self.prefix, "site-packages", "interpreter", walk=True)

    def distributions(self) -> None:
        """Every file of every distribution of the primary interpreter."""
        for name, component in sorted(self.manifest.section("python_packages").items()):
            if component.get("interpreter") not in (None, self.executable):
                continue
            location = component.get("location")
            metadata_dir = component.get("metadata_dir")
            if not isinstance(location, str) or not isinstance(metadata_dir, str):
                continue
            origin = f"dist:{component.get('name') or name}"
            meta = posixpath.join(location, metadata_dir)
            self.files.add_path(meta, "site-packages", origin, walk=True)
            for path in self._dist_paths(component, location, meta):
                self.files.add_path(path, "site-packages", origin)

    def _dist_paths(self, component: Component, location: str, meta: str) -> list[str]:
        kind = component.get("kind")
        try:
            if kind == "dist-info":
                record = f"{meta}/RECORD"
                text = self.source.read_text(record)
                self.dists.append((location, record))
                return [resolve_record_path(location, row[0]) for row in record_rows(text)]
            if kind == "egg-info" and self.source.is_dir(meta):
                text = self.source.read_text_or_none(f"{meta}/installed-files.txt") or ""
                return [
                    resolve_record_path(meta, line.strip())
                    for line in text.splitlines()
                    if line.strip()
                ]
        except SourceReadError as err:
            self.notes.append(f"{meta}: file list not readable ({err})")
        return []

    def apps(self) -> None:
        """The application folders, at their own path or at DEST."""
        for host, dest in self.options.apps:
            # DEST resolved inside the image's tree: no entry may sit below a symlink.
            target = self.files.add_parents("/" + dest.strip("/") + "/x", "app", "app") or "/"
            prefix = target.rstrip("/")

            def excluder(path: str, size: int, prefix: str = prefix) -> str | None:
                return self.rules(prefix + path, size)  # globs match image paths

            app_source = Source.rootfs(host)
            app_source.observer = self.source.observer  # the build cache sees the app too
            app_files = FileSet(app_source, self.options.source_date_epoch, excluder)
            app_files.add_path("/", "app", "app", walk=True)
            for planned in app_files.finish():
                entry = planned.entry
                if entry.path == "/" and target == "/":
                    continue
                moved = replace(
                    planned,
                    entry=replace(entry, path=prefix + entry.path if entry.path != "/" else target),
                    source_path=host.rstrip("/") + entry.path,
                )
                self.files.put(moved)
            for left_out in app_files.excluded:
                self.files.exclude(prefix + left_out.path, left_out.size, left_out.reason)
            self.notes.extend(app_files.skipped)

    def includes(self) -> None:
        """``--include`` paths, the entrypoint's program and what shebangs name."""
        for path in self.options.include:
            inner = "/" + path.strip("/")
            if not self.files.add_path(inner, _PENDING, "include", walk=True):
                raise PackError(f"--include {path}: not in the source")
            self._note_program(inner)
        if self.options.entrypoint:
            program = self._which(self.options.entrypoint[0])
            if program is not None and self.files.add_path(program, _PENDING, "include"):
                self._note_program(program)
        for planned in list(self.files.items()):
            entry = planned.entry
            if (
                entry.kind == "file"
                and entry.mode & 0o111
                and planned.group in ("app", "site-packages", _PENDING)
                and posixpath.basename(posixpath.dirname(entry.path)) == "bin"
            ) or (entry.kind == "file" and planned.group == "app" and entry.mode & 0o111):
                self._shebang(entry.path)

    def _which(self, name: str) -> str | None:
        if name.startswith("/"):
            return name
        for folder in [f"{self.prefix}/bin", *DEFAULT_PATH.split(":")]:
            candidate = posixpath.join(folder, name)
            if self.source.is_file(candidate):
                return candidate
        return None

    def _note_program(self, path: str) -> None:
        try:
            real = self.resolver.real_path(path)
        except SourceReadError:
            return
        if self.source.is_file(real):
            self.binaries.add(real)
            self._shebang(real)

    def _shebang(self, path: str) -> None:
        try:
            head = self.source.read_bytes(path, limit=256)
        except SourceReadError:
            return
        if not head.startswith(b"#!"):
            return
        line = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").strip()
        try:
            words = shlex.split(line)
        except ValueError:
            words = line.split()
        if not words or not words[0].startswith("/"):
            return
        programs = [words[0]]
        if posixpath.basename(words[0]) == "env":
            rest = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
            if rest:
                found = self._which(rest[0])
                if found is not None:
                    programs.append(found)
        for program in programs:
            if program in self.files:
                continue
            if self.files.add_path(program, _PENDING, "shebang"):
                real = self.resolver.real_path(program)
                if real not in self.binaries:
                    self.binaries.add(real)
                    self._shebang(real)

    def configs(self) -> None:
        """Captured config files; secret-holding ones only with ``include_secrets``."""
        for path, component in sorted(self.manifest.section("config_files").items()):
            if not isinstance(path, str) or component.get("type") not in ("file", "symlink"):
                continue
            if path in GENERATED:
                size = component.get("size")
                reason = "replaced by the generated base file"
                self.files.exclude(path, size if isinstance(size, int) else 0, reason)
                continue
            if holds_secrets(component):
                self.secret_configs.append(path)
                if not self.options.include_secrets:
                    size = component.get("size")
                    reason = "holds secrets (--include-secrets to ship it)"
                    self.files.exclude(path, size if isinstance(size, int) else 0, reason)
                    continue
            self.files.add_path(path, "config", "config")

    def libraries(self) -> Closure:
        """The closure of the interpreter, its extension modules and the binaries."""
        extensions = [
            p.entry.path
            for p in self.files.items()
            if p.entry.kind == "file"
            and looks_like_elf_name(posixpath.basename(p.entry.path))
            and p.group in ("interpreter", "stdlib", "site-packages", "app")
        ]
        closure = find_closure(self.resolver, self.executable, extensions, self.binaries)
        self._add_closure(closure)
        return closure

    def _add_closure(self, closure: Closure) -> None:
        for loader in sorted(closure.loaders):
            self.files.add_path(loader, "loader", "loader")
        for key in sorted(closure.libraries):
            lib = closure.libraries[key]
            group = "interpreter" if self._under(lib.real_path, [self.base_prefix]) else _PENDING
            self.files.add_path(lib.path, group, f"library:{lib.name}")
            self.files.add_path(lib.real_path, group, f"library:{lib.name}")
        self.notes.extend(f"library not found: {m}" for m in sorted(set(closure.missing)))

    def dlopened(self, closure: Closure) -> None:
        libc = self.manifest.section("os").get("libc") or {}
        family = str(libc.get("family") or "")
        version = str(libc.get("version") or "")
        candidates = [
            lib.real_path for lib in closure.libraries.values() if lib.name != "libc.so.6"
        ]
        iconv = uses_iconv(self.source, candidates)
        extras = dlopen_extras(
            self.source,
            self.resolver,
            self.executable,
            closure.libraries.values(),
            libc_family=family,
            libc_version=version,
            iconv_used=iconv,
            nsswitch=NSSWITCH,  # what the base writes as the image's /etc/nsswitch.conf
        )
        before = set(self.files.paths())
        for extra in extras:
            group = "base" if extra.what == "ldconfig" else _PENDING
            if self.files.add_path(extra.path, group, f"dlopen:{extra.what}", walk=extra.walk):
                self.dlopen_added.append(extra.path)
        added = [
            p.entry.path
            for p in self.files.items()
            if p.entry.path not in before and p.entry.kind == "file"
        ]
        if added:
            more = find_closure(self.resolver, None, [], added)
            self._add_closure(more)

    def ld_so_cache(self) -> None:
        try:
            info = self.resolver.elf(self.resolver.real_path(self.real_executable))
        except SourceReadError:
            info = None
        libc = self.manifest.section("os").get("libc") or {}
        if info is None or libc.get("family") != "glibc":
            return
        shipped = [p.entry.path for p in self.files.items() if p.entry.kind in ("file", "symlink")]
        entries = cache_entries(self.resolver, shipped, info.machine, info.elf_class)
        self.files.add_generated(
            "/etc/ld.so.cache", write_ld_so_cache(entries), "base", replace_existing=True
        )

    def base(self) -> None:
        config_paths = set(self.manifest.section("config_files"))
        self.env.update(add_base_files(self.files, self.manifest.section("os"), config_paths))

    def owners_and_database(self) -> None:
        """Group system files by owning package; write the image's package database."""
        # No hash cache here: its owner memo holds every capture's answers and loading it
        # costs more than reading the package file lists once.
        owners = OwnerIndex(self.source, None, None)
        packages: set[str] = set()
        for planned in list(self.files.items()):
            if planned.source_path is None:
                continue
            owner = owners.owner(planned.entry.path)
            if planned.entry.kind == "dir":
                owner = None if planned.group != _PENDING else owner
            elif owner is not None and owner.get("kind") in ("dpkg", "apk"):
                packages.add(owner["name"])
            if planned.group == _PENDING:
                name = owner["name"] if owner else "unowned"
                self.files.put(replace(planned, group=f"syslib:{name}"), replace_existing=True)
        try:
            status = self.source.read_text_or_none(DPKG_STATUS)
            apk = self.source.read_text_or_none(APK_INSTALLED)
        except SourceReadError as err:
            self.notes.append(f"package database not readable: {err}")
            return
        if status is not None:
            text = filter_dpkg_status(status, packages)
            self.files.add_generated(DPKG_STATUS, text.encode(), "base", replace_existing=True)
        if apk is not None:
            text = filter_apk_installed(apk, packages)
            self.files.add_generated(APK_INSTALLED, text.encode(), "base", replace_existing=True)

    def start_pycs(self) -> _PendingPycs | None:
        """Drop the source's pycs; start compiling deterministic ones for every shipped .py.

        The workers run while the planner checks drift and package owners; ``finish_pycs``
        adds what they made.
        """
        files = self.files
        py_paths = {
            p.entry.path
            for p in files.items()
            if p.entry.kind == "file" and p.entry.path.endswith(".py")
        }
        for planned in list(files.items()):
            path = planned.entry.path
            if not path.endswith(".pyc") or planned.entry.kind != "file":
                continue
            if _pyc_source(path) in py_paths:
                files.remove(path)
                files.exclude(path, planned.entry.size, "stale .pyc (regenerated)")
        if not self.options.bytecode:
            return None
        runner = self._compiler()
        if runner is None:
            return None
        jobs: list[bytecode.CompileJob] = []
        copies = tempfile.mkdtemp(prefix="envpack-py-")
        try:
            for path in sorted(py_paths):
                found = files.get(path)
                if found is None or found.source_path is None:
                    continue
                host = self._host_path(found, copies, len(jobs))
                if host is None:
                    continue
                jobs.append(bytecode.CompileJob(host, path, found.entry.mtime))
                if not host.startswith(copies + os.sep):
                    # The worker reuses the code of a pyc the interpreter wrote there.
                    self._observe_host(bytecode.pyc_path(host, runner), follow=False)
            running = bytecode.start_compiling(
                runner,
                jobs,
                cache_dir=_pyc_cache(self.options) if self.options.use_cache else None,
            )
        except BaseException:
            shutil.rmtree(copies, ignore_errors=True)
            raise
        return _PendingPycs(running, copies)

    def finish_pycs(self, pending: _PendingPycs | None) -> None:
        if pending is None:
            return
        try:
            compiled, failed = pending.running.finish(
                progress=lambda done, total: self.progress("bytecode", done, total)
            )
        finally:
            shutil.rmtree(pending.copies, ignore_errors=True)
        if failed:
            shown = ", ".join(failed[:5])
            self.notes.append(
                f"bytecode: {len(failed)} sources do not compile for Python {self.xy}, "
                f"left without .pyc: {shown}{' …' if len(failed) > 5 else ''}"
            )
        for item in compiled:
            source = self.files.get(item.job.image_path)
            if source is None:
                continue
            # The source's group as it is now: owners may have settled it meanwhile.
            self.files.add_generated_stream(
                item.pyc_path, item.size, item.open, f"bytecode:{source.group}",
                replace_existing=True,
            )  # fmt: skip

    def _host_path(self, planned: PlannedFile, copies: str, index: int) -> str | None:
        """Where the compiler reads a ``.py``: a host path it may open by name.

        Under ``--root`` that is a private copy of the bytes read through the source's
        descriptors: the tree's own path, opened by name by another process, could lead
        out of the root if the tree changed meanwhile.
        """
        if planned.group == "app":
            return planned.source_path
        try:
            if self.source.is_live:
                return self.source.resolve(planned.entry.path).host
            data = self.source.read_bytes(planned.entry.path, whole=True)
        except SourceReadError:
            return None
        copy = os.path.join(copies, f"{index}.py")
        with open(copy, "wb") as stream:
            stream.write(data)
        return copy

    def _compiler(self) -> bytecode.InterpreterInfo | None:
        implementation = str(self.interp.get("implementation") or "cpython")
        if implementation != "cpython":
            self.notes.append(f"bytecode: not generated for {implementation}")
            return None
        if self.source.is_live:
            info = bytecode.interpreter_info(self.real_executable)
            if info is not None:
                return info
        host = shutil.which(f"python{self.xy}")
        if host:
            self._observe_host(host, follow=True)
        info = bytecode.interpreter_info(host) if host else None
        if info is None or ".".join(map(str, info.version)) != self.xy:
            self.notes.append(
                f"bytecode: no Python {self.xy} on this host to compile with; .pyc not generated"
            )
            return None
        return info

    def _observe_host(self, path: str, *, follow: bool) -> None:
        """Tell the build cache about a host file read outside the sources."""
        if self.source.observer is None:
            return
        if self._host is None:
            self._host = Source.live()
            self._host.observer = self.source.observer
        with contextlib.suppress(SourceReadError):
            if follow:
                self._host.stat(path)
            else:
                self._host.lstat(path)

    def check_drift(self) -> list[Drifted]:
        shipped = {p.source_path for p in self.files.items() if p.source_path is not None}
        drifted = check_drift(self.manifest, self.source, shipped, self.cache, self.dists)
        if drifted and not self.options.allow_drift:
            raise PackError(drift_message(drifted))
        return drifted

    def finish(self, drifted: list[Drifted]) -> Plan:
        files = self.files.finish()
        by_path = {p.entry.path: p for p in files}
        real = self.resolver.real_path(self.executable)
        check_user_reach(self.options.user, self.executable, by_path, real=real)
        path_dirs = [f"{self.prefix}/bin"] if self.interp.get("virtualenv") else []
        env = {
            "LANG": "C.UTF-8",
            "PATH": ":".join(dict.fromkeys([*path_dirs, *DEFAULT_PATH.split(":")])),
            **self.env,
        }
        digest = hashlib.sha256(dumps(self.manifest).encode("utf-8")).hexdigest()
        excluded = sorted(self.files.excluded, key=lambda e: e.path)
        return Plan(
            files=files,
            excluded=tuple(excluded),
            dlopen_added=tuple(sorted(set(self.dlopen_added))),
            secret_configs=tuple(sorted(self.secret_configs)),
            drift=tuple(drifted),
            interpreter=self.executable,
            env=env,
            manifest_digest=f"sha256:{digest}",
            notes=(*self.notes, *self.files.skipped),
        )


class _PendingPycs:
    """Bytecode being compiled, and the folder of private source copies it reads."""

    def __init__(self, running: bytecode.Compiling, copies: str) -> None:
        self.running = running
        self.copies = copies

    def abort(self) -> None:
        self.running.abort()
        shutil.rmtree(self.copies, ignore_errors=True)


def _pyc_source(path: str) -> str:
    """The ``.py`` a ``.pyc`` was compiled from (``__pycache__/x.cpython-311.pyc`` → ``x.py``)."""
    folder, name = posixpath.split(path)
    if posixpath.basename(folder) == "__pycache__":
        return posixpath.join(posixpath.dirname(folder), name.split(".", 1)[0] + ".py")
    return path[:-1]


def _pyc_cache(options: PlanOptions) -> Path:
    """Where compiled pycs are kept between builds: beside the hash cache."""
    return options.cache_dir or default_cache_dir()


def plan_image(manifest: Manifest, source: Source, options: PlanOptions) -> Plan:
    """Every file of the image of ``manifest``, read from ``source``.

    Raises :class:`PackError` (one line) for a manifest without a primary interpreter, a
    ``--root`` that is not the captured tree, a source symlink escaping the root, a
    ``--user`` who cannot reach the interpreter, and drift unless ``allow_drift``.
    """
    check_release(manifest, source)
    parse_user(options.user)  # an unknown user is refused before any work
    planner = _Planner(manifest, source, options)
    try:
        steps: list[tuple[str, Callable[[], object]]] = [
            ("interpreter", planner.python),
            ("distributions", planner.distributions),
            ("application", planner.apps),
            ("binaries", planner.includes),
            ("config", planner.configs),
        ]
        for index, (phase, step) in enumerate(steps):
            planner.progress(phase, index, len(steps))
            step()
        closure = planner.libraries()
        planner.dlopened(closure)
        planner.base()
        planner.ld_so_cache()
        pending = planner.start_pycs()
        try:
            planner.owners_and_database()
            planner.progress("drift", 0, 1)
            drifted = planner.check_drift()
        except BaseException:
            if pending is not None:
                pending.abort()
            raise
        planner.finish_pycs(pending)
        return planner.finish(drifted)
    finally:
        planner.cache.close()
