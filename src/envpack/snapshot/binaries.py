"""Probe ``binaries``: the commands on PATH and the ``--bin`` extras.

Key: the command name, the first hit on PATH winning as in a shell (PATH is the captured
process's on the live host, a standard one under ``--root``); a ``--bin`` extra is keyed
by the path given. Each command is opened once: four bytes tell ELF from script, ELF
facts come from :mod:`envpack.snapshot.elf`, a script records its ``#!`` line. Nothing is
run, except ``X --version`` with ``--probe-versions`` on the live host (time-boxed).
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
import signal
import stat
import subprocess
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from envpack.fsnames import escape
from envpack.snapshot.context import CaptureContext
from envpack.snapshot.elf import ELF_MAGIC, ElfError, ElfInfo, parse_elf_bytes
from envpack.snapshot.filebytes import FileBytes
from envpack.snapshot.hashcache import HashBatch, cache_for
from envpack.snapshot.ldso import resolver_for
from envpack.snapshot.owners import owners_for
from envpack.snapshot.source import DEFAULT_PATH, Source, SourceReadError, file_kind

__all__ = ["DEFAULT_PATH", "probe", "search_path"]

SECTION = "binaries"
"""PATH under ``--root``: an offline tree has no process environment (Debian's default)."""
_VERSION_TIMEOUT = 2.0
_VERSION_WORKERS = 8
_SHEBANG_MAX = 256
_PROGRESS_EVERY = 250
_FACTS_KIND = "binary-head/2"  # 2: ELF facts nested as a list, not as text
"""Hash-cache facts: [ElfInfo.to_cache() or null, shebang or null]."""


def search_path(source: Source) -> list[str]:
    """The PATH folders to search, in order, absolute only (as inside the source)."""
    raw = source.environ.get("PATH", DEFAULT_PATH) if source.is_live else DEFAULT_PATH
    return list(dict.fromkeys(d.rstrip("/") or "/" for d in raw.split(":") if d.startswith("/")))


def _commands_on_path(ctx: CaptureContext) -> dict[str, tuple[str, os.stat_result]]:
    """Command name → path of its first hit on PATH (an executable regular file), stat."""
    found: dict[str, tuple[str, os.stat_result]] = {}
    for folder in search_path(ctx.source):
        try:
            entries = sorted(ctx.source.scandir(folder), key=lambda e: e.name)
        except SourceReadError as err:
            ctx.issue(SECTION, folder, str(err))
            continue
        for entry in entries:
            if entry.name in found:
                continue
            path = posixpath.join(folder, entry.name)
            try:
                # A symlink is followed inside the source, never out of it.
                st = ctx.source.stat(path) if entry.is_symlink() else entry.stat()
            except SourceReadError as err:
                ctx.issue(SECTION, path, str(err))
                continue
            except OSError as err:
                ctx.issue(SECTION, path, f"{path}: {err.strerror}")
                continue
            problem = _not_a_command(st)
            if problem is not None:
                ctx.issue(SECTION, path, f"{path}: {problem}")
            elif st is not None and stat.S_ISREG(st.st_mode) and st.st_mode & 0o111:
                found[entry.name] = (path, st)
    return found


def _not_a_command(st: os.stat_result | None) -> str | None:
    """Why a PATH entry is worth an issue; ``None`` for a command or an ordinary non-one.

    A folder or a file without an execute bit is not a command for the shell either:
    skipped without a word. A dangling symlink, a FIFO, a socket or a device node on PATH
    is a broken or odd install that would otherwise vanish from the manifest unseen.
    """
    if st is None:
        return "a symlink to nothing in the source; not a command"
    kind = file_kind(st.st_mode)
    if kind in ("file", "dir"):
        return None
    return f"is a {kind}, not a regular file; not a command (never opened)"


def _inspect(content: FileBytes, path: str) -> tuple[ElfInfo | None, str | None]:
    """ELF facts or the shebang line of an open file (read with ``pread`` only)."""
    try:
        head = content.pread(_SHEBANG_MAX, 0)
    except OSError as err:
        raise SourceReadError(f"{path}: {err.strerror}") from err
    if head[:4] == ELF_MAGIC:
        return parse_elf_bytes(content, path), None
    if head[:2] == b"#!":
        return None, head.split(b"\n", 1)[0].decode("utf-8", "replace").rstrip()
    return None, None


# What a version looks like in the first line of ``X --version``: a number standing on
# its own ("gzip 1.12", "v1.36.1", "less 590", "xxd 2022-01-14"), in a line that is not
# an error or usage message ("dash: 0: Illegal option --", "usage: ssh [-46AaC…]").
_VERSION_NUMBER = re.compile(r"(?<![\w.])v?\d+(?:[.-]\d+)*(?![\w])")
_NOT_A_VERSION = re.compile(
    r"\b(?:error|illegal|invalid|unknown|unrecogni[sz]ed|usage|not found|cannot|can't|"
    r"no such|failed|denied|missing)\b",
    re.IGNORECASE,
)


def looks_like_version(line: str) -> bool:
    """Whether ``line`` (the first line of ``X --version``) states a version."""
    return _VERSION_NUMBER.search(line) is not None and _NOT_A_VERSION.search(line) is None


def _version(path: str) -> tuple[str | None, str | None]:
    """``(version, problem)`` from ``path --version``: the first line of its output when
    it exits 0 and the line looks like a version; else ``None`` and why not."""
    try:
        proc = subprocess.Popen(
            [path, "--version"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # no access to our terminal; its group killed as one
        )
    except OSError as err:
        return None, f"--version could not run: {err.strerror or err}"
    try:
        out, _ = proc.communicate(timeout=_VERSION_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        try:  # a grandchild that left the group may still hold the pipe: do not wait on it
            proc.communicate(timeout=0.5)
        except subprocess.TimeoutExpired:
            if proc.stdout is not None:
                proc.stdout.close()
            proc.kill()
            proc.wait()
        return None, f"--version did not finish within {_VERSION_TIMEOUT:g} s"
    line = next(
        (ln.strip()[:200] for ln in out.decode("utf-8", "replace").splitlines() if ln.strip()),
        "",
    )
    if proc.returncode != 0:
        said = f": {line}" if line else ""
        return None, f"--version failed (exit status {proc.returncode}){said}"
    if not looks_like_version(line):
        return None, f"--version printed no version: {line or '(nothing)'}"
    return line, None


def _targets(ctx: CaptureContext) -> dict[str, tuple[str, os.stat_result]]:
    """Key → (path, stat): the commands on PATH, then the ``--bin`` extras."""
    targets = _commands_on_path(ctx)
    for raw in ctx.options.binaries:
        extra = escape(raw)  # a path typed on the command line: recorded form (fsnames)
        inner = extra if extra.startswith("/") else "/" + extra
        st = ctx.source.stat(inner) if ctx.source.is_file(inner) else None
        if st is None:
            ctx.issue(SECTION, extra, "--bin: no such regular file in the source")
            continue
        targets[extra] = (inner, st)
    return targets


def _head_facts(
    ctx: CaptureContext, batch: HashBatch, real: str, seen: os.stat_result
) -> tuple[ElfInfo | None, str | None, os.stat_result]:
    """ELF facts or shebang, and the file queued for hashing.

    From the hash cache when the file is unchanged (then it is not even opened); else
    read, and the open descriptor handed to the hasher so the file is opened once. A
    damaged ELF file is still a binary: recorded with ``elf`` null and an issue (and not
    remembered, so every capture reports it).
    """
    cache = batch.cache
    remembered = cache.facts(seen, _FACTS_KIND)
    if remembered is not None:
        elf, shebang = _facts_from_text(remembered)
        batch.add(real, seen)
        return elf, shebang, seen
    content, st = ctx.source.open_bytes(real)
    try:
        elf, shebang = _inspect(content, real)
    except ElfError as err:
        ctx.issue(SECTION, real, str(err))
        elf = shebang = None
    except BaseException:
        content.close()
        raise
    else:
        cache.remember_facts(st, _FACTS_KIND, _facts_text(elf, shebang))
    batch.add_open(real, content, st)  # hashed in the background while the next file is read
    return elf, shebang, st


def probe(ctx: CaptureContext) -> None:
    source = ctx.source
    targets = _targets(ctx)
    ctx.progress(f"binaries: {len(targets)} commands")
    resolver = resolver_for(ctx)
    owners = owners_for(ctx)
    cache = cache_for(ctx)
    batch = cache.batch(source)
    components: dict[str, dict[str, Any]] = {}
    real_paths: dict[str, str] = {}
    for count, (key, (path, seen)) in enumerate(sorted(targets.items()), 1):
        if count % _PROGRESS_EVERY == 0:
            ctx.progress(f"binaries: {count}/{len(targets)}")
        try:
            real = resolver.real_path(path)
            elf, shebang, st = _head_facts(ctx, batch, real, seen)
        except SourceReadError as err:
            ctx.issue(SECTION, path, str(err))
            continue
        if elf is not None:
            resolver.remember(real, elf, st)
        real_paths[key] = real
        components[key] = {
            "path": path,
            "real_path": real,
            "size": st.st_size,
            "mode": f"{stat.S_IMODE(st.st_mode):04o}",
            "sha256": None,
            "owner": owners.owner(path, real),
            "elf": None if elf is None else _elf_json(elf),
            "shebang": shebang,
        }
    for problem_path, reason in owners.problems:
        ctx.issue(SECTION, problem_path, reason)
    owners.problems.clear()
    if ctx.options.probe_versions and source.is_live:
        _add_versions(ctx, components)
    ctx.sections[SECTION] = components

    def fill_hashes() -> None:
        hashes = batch.results()
        for key, component in components.items():
            digest = hashes.get(real_paths[key])
            if isinstance(digest, str):
                component["sha256"] = digest
            elif digest is not None:
                ctx.issue(SECTION, component["path"], str(digest))

    # The files go on hashing in the background while the next probes run.
    ctx.defer(fill_hashes)


def _facts_text(elf: ElfInfo | None, shebang: str | None) -> str:
    # One JSON document: the ELF facts nested as a list, not as JSON text inside JSON.
    return json.dumps([None if elf is None else elf.to_fields(), shebang], separators=(",", ":"))


def _facts_from_text(text: str) -> tuple[ElfInfo | None, str | None]:
    elf, shebang = json.loads(text)
    return (None if elf is None else ElfInfo.from_fields(elf)), shebang


def _elf_json(elf: ElfInfo) -> dict[str, Any]:
    data = elf.to_json()
    del data["type"]
    return data


def _add_versions(ctx: CaptureContext, components: dict[str, dict[str, Any]]) -> None:
    ctx.progress(f"binaries: running --version of {len(components)} commands")
    keys = sorted(components)
    with ThreadPoolExecutor(max_workers=_VERSION_WORKERS) as pool:
        versions = list(pool.map(lambda k: _version(components[k]["path"]), keys))
    for key, (version, problem) in zip(keys, versions):
        # A tool's output is captured text like any other: a wrapper may print its config.
        components[key]["version"] = None if version is None else ctx.redactor.text(version)
        if problem is not None:
            ctx.issue(SECTION, components[key]["path"], problem)
