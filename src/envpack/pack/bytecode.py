"""``.pyc`` files for every shipped ``.py``, valid for the image's interpreter, deterministic.

The image's own interpreter compiles them (the captured one on a live host; for a
``--root`` capture a host interpreter of the same X.Y, else none), in a few worker
processes that each take a batch of files, so a container never compiles at start and
runs with ``--read-only``:

- 3.7+: unchecked-hash pycs (PEP 552): the header holds a hash of the source, which the
  interpreter never re-checks, so clamped source times do not matter;
- 3.3 to 3.6: the classic header with the *clamped* mtime and the source size;
- 2.7: a ``foo.pyc`` beside ``foo.py`` whose header holds the clamped mtime.

A source that does not compile for that version (Python 2 code in a Python 3 package) is
skipped, as pip does. Results are kept in a cache keyed by the interpreter, the source
bytes, its image path and the header time, so a rebuild compiles only what changed.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import posixpath
import subprocess
import tempfile
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "CompileJob",
    "Compiled",
    "Compiling",
    "compile_sources",
    "interpreter_info",
    "pyc_path",
    "start_compiling",
]

# Runs inside the target interpreter (2.7 to 3.13): one JSON job per stdin line, one
# answer each on stdout. Kept to syntax every one of those versions reads.
_WORKER = r"""
import sys, json, marshal, struct, hashlib, os
if sys.version_info >= (3, 4):
    import importlib.util
    MAGIC = importlib.util.MAGIC_NUMBER
else:
    import imp
    MAGIC = imp.get_magic()
HASHED = sys.version_info >= (3, 7)
SIZED = sys.version_info >= (3, 3)
cache = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] else None
ident = sys.argv[2].encode("ascii") if len(sys.argv) > 2 else b""
# Answers are binary: "ok <length>\n" followed by the pyc, or "error <name>\n".
out = getattr(sys.stdout, "buffer", sys.stdout)
HEADER = 16 if HASHED else (12 if SIZED else 8)


def existing_code(src, data):
    # The code of a pyc the interpreter itself wrote for this very source, else None.
    if HASHED or SIZED:
        pyc = importlib.util.cache_from_source(src)
    else:
        pyc = src + "c"
    try:
        with open(pyc, "rb") as f:
            old = f.read()
        st = os.stat(src)
    except (IOError, OSError, NotImplementedError, ValueError):
        return None
    if len(old) <= HEADER or old[:4] != MAGIC:
        return None
    if HASHED:
        flags = struct.unpack("<I", old[4:8])[0]
        if flags & 1:
            return old[16:] if old[8:16] == importlib.util.source_hash(data) else None
        fields = struct.unpack("<II", old[8:16])
    elif SIZED:
        fields = struct.unpack("<II", old[4:12])
    else:
        fields = (struct.unpack("<I", old[4:8])[0], len(data) & 0xFFFFFFFF)
    if fields != (int(st.st_mtime) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF):
        return None
    return old[HEADER:]


def header(data, mtime):
    # Unchecked-hash (3.7+), else the clamped mtime (and size, 3.3+).
    if HASHED:
        return MAGIC + struct.pack("<I", 1) + importlib.util.source_hash(data)
    if SIZED:
        return MAGIC + struct.pack("<II", mtime & 0xFFFFFFFF, len(data) & 0xFFFFFFFF)
    return MAGIC + struct.pack("<I", mtime & 0xFFFFFFFF)


def answer(pyc):
    out.write(("ok %d\n" % len(pyc)).encode("ascii"))
    out.write(pyc)


for line in sys.stdin:
    src, dfile, mtime = json.loads(line)
    try:
        with open(src, "rb") as f:
            data = f.read()
        body = existing_code(src, data)
        if body is not None:
            answer(header(data, mtime) + body)
            continue
        key = None
        if cache:
            h = hashlib.sha256(ident + b"\0" + dfile.encode("utf-8") + b"\0")
            h.update(str(mtime).encode("ascii") + b"\0" + data)
            key = os.path.join(cache, h.hexdigest() + ".pyc")
            if os.path.exists(key):
                with open(key, "rb") as f:
                    answer(f.read())
                continue
        code = compile(data, dfile, "exec", 0, True)
        pyc = header(data, mtime) + marshal.dumps(code)
        if key:
            try:
                tmp = key + ".%d.tmp" % os.getpid()
                with open(tmp, "wb") as f:
                    f.write(pyc)
                os.rename(tmp, key)
            except (IOError, OSError):
                pass  # the cache is only a speed-up
        answer(pyc)
    except Exception as err:
        out.write(("error %s\n" % type(err).__name__).encode("ascii"))
out.flush()
"""

_INFO = (
    "import sys, json; tag = getattr(getattr(sys, 'implementation', None), 'cache_tag', None);"
    "print(json.dumps([list(sys.version_info[:2]), tag,"
    " getattr(getattr(sys, 'implementation', None), 'name', 'cpython')]))"
)


@dataclass(frozen=True)
class InterpreterInfo:
    """What decides where a pyc goes and what it must be."""

    executable: str
    version: tuple[int, int]
    cache_tag: str | None
    implementation: str


@dataclass(frozen=True)
class CompileJob:
    source: str
    """Where this process reads the ``.py`` (a host path)."""
    image_path: str
    """The ``.py``'s path in the image (the name in tracebacks)."""
    mtime: int
    """The clamped mtime the image gives the ``.py``."""


@dataclass(frozen=True)
class Compiled:
    job: CompileJob
    pyc_path: str
    size: int
    open: Callable[[], BinaryIO]
    """The pyc's bytes, read from the worker's spool file when the layer is written."""

    def read(self) -> bytes:
        with self.open() as stream:
            return stream.read()


def interpreter_info(executable: str) -> InterpreterInfo | None:
    """Ask an interpreter for its version and cache tag; ``None`` when it cannot run."""
    try:
        done = subprocess.run(
            [executable, "-E", "-s", "-c", _INFO],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        version, tag, implementation = json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if done.returncode != 0:
        return None
    return InterpreterInfo(executable, (int(version[0]), int(version[1])), tag, implementation)


def pyc_path(py_path: str, info: InterpreterInfo) -> str:
    """Where the interpreter looks for the bytecode of ``py_path``."""
    folder, name = posixpath.split(py_path)
    stem = name[: -len(".py")]
    if info.version >= (3, 2) and info.cache_tag:
        return posixpath.join(folder, "__pycache__", f"{stem}.{info.cache_tag}.pyc")
    return posixpath.join(folder, stem + ".pyc")


def compile_sources(
    info: InterpreterInfo,
    jobs: Sequence[CompileJob],
    *,
    cache_dir: Path | None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[Compiled], list[str]]:
    """Compile ``jobs`` in worker processes; the pycs and the files that did not compile."""
    return start_compiling(info, jobs, cache_dir=cache_dir, workers=workers).finish(progress)


class Compiling:
    """Workers compiling in the background (:func:`start_compiling`): ``finish`` waits for
    them and gives the results; ``abort`` kills them. One of the two must be called."""

    def __init__(
        self, info: InterpreterInfo, procs: list[tuple[list[CompileJob], Any, _Spool]]
    ) -> None:
        self._info = info
        self._procs = procs

    def finish(
        self, progress: Callable[[int, int], None] | None = None
    ) -> tuple[list[Compiled], list[str]]:
        """The pycs (sorted by path) and the image paths of the sources that did not compile."""
        total = sum(len(batch) for batch, _, _ in self._procs)
        compiled: list[Compiled] = []
        failed: list[str] = []
        done = 0
        try:
            for batch, proc, spool in self._procs:
                proc.wait()
                _read_answers(spool, batch, self._info, compiled, failed)
                done += len(batch)
                if progress is not None:
                    progress(done, total)
        except BaseException:
            self.abort()
            raise
        compiled.sort(key=lambda c: c.pyc_path)
        return compiled, sorted(failed)

    def abort(self) -> None:
        for _, proc, spool in self._procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            spool.close()


def start_compiling(
    info: InterpreterInfo,
    jobs: Sequence[CompileJob],
    *,
    cache_dir: Path | None,
    workers: int | None = None,
) -> Compiling:
    """Start compiling ``jobs`` in worker processes and return at once (the caller works on
    meanwhile; the sources must stay where the jobs say until ``finish``)."""
    if not jobs:
        return Compiling(info, [])
    ident = _identity(info)
    cache = ""
    if cache_dir is not None:
        folder = cache_dir / "pyc" / hashlib.sha256(ident.encode()).hexdigest()[:16]
        try:
            folder.mkdir(parents=True, exist_ok=True)
            cache = str(folder)
        except OSError:
            cache = ""
    count = max(1, min(workers or os.cpu_count() or 1, 4, (len(jobs) + 199) // 200))
    batches = [list(jobs[i::count]) for i in range(count)]
    # Every worker reads its jobs from an unlinked file and answers into another: all of
    # them run at once (a pipe would wait for us to feed it), no pyc becomes a file of its
    # own (thousands of creations cost more than compiling), and the answers stay on disk
    # until the layer writer reads them, so memory does not grow with the image. Unlinked
    # files vanish with the process, however it ends.
    running = Compiling(info, [])
    try:
        for batch in batches:
            with tempfile.TemporaryFile() as requests:
                for job in batch:
                    line = json.dumps([job.source, job.image_path, job.mtime]) + "\n"
                    requests.write(line.encode("ascii"))
                requests.seek(0)
                spool = _Spool()
                try:
                    proc = subprocess.Popen(
                        [info.executable, "-E", "-s", "-c", _WORKER, cache, ident],
                        stdin=requests,
                        stdout=spool.fd,
                        stderr=subprocess.DEVNULL,
                    )
                except BaseException:
                    spool.close()
                    raise
            running._procs.append((batch, proc, spool))
    except BaseException:
        running.abort()
        raise
    return running


def _read_answers(
    spool: _Spool,
    batch: Sequence[CompileJob],
    info: InterpreterInfo,
    compiled: list[Compiled],
    failed: list[str],
) -> None:
    """Index one worker's answer file: where each pyc starts and how long it is."""
    total = os.fstat(spool.fd).st_size
    with os.fdopen(os.dup(spool.fd), "rb") as answers:
        answers.seek(0)
        for job in batch:
            head = answers.readline()
            ok = head.startswith(b"ok ") and head[3:].strip().isdigit()
            size = int(head[3:]) if ok else -1
            offset = answers.tell()
            if size < 0 or offset + size > total:
                # "error <name>", or a worker that died before answering in full.
                failed.append(job.image_path)
                continue
            answers.seek(size, os.SEEK_CUR)
            pyc = pyc_path(job.image_path, info)
            opener = functools.partial(spool.read, offset, size)
            compiled.append(Compiled(job, pyc, size, opener))


class _Spool:
    """A worker's answer file, unlinked from birth: its descriptor stays open for as long
    as an opener of one of its pycs lives (closed when the last goes, or by ``close``)."""

    def __init__(self) -> None:
        with tempfile.TemporaryFile() as file:
            self.fd = os.dup(file.fileno())
        self._finalizer = weakref.finalize(self, os.close, self.fd)

    def read(self, offset: int, size: int) -> BinaryIO:
        return io.BytesIO(os.pread(self.fd, size, offset))

    def close(self) -> None:
        self._finalizer()


def _identity(info: InterpreterInfo) -> str:
    """What the cache key holds about the interpreter: its version and magic-bearing binary."""
    try:
        st = os.stat(info.executable)
        stamp = f"{st.st_size}:{int(st.st_mtime)}"
    except OSError:
        stamp = "?"
    version = f"{info.version[0]}.{info.version[1]}"
    return f"pyc/1:{info.implementation}:{version}:{info.executable}:{stamp}"
