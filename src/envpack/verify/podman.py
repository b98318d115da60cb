"""Run the interpreter probe inside an image with podman: no daemon, the image read natively.

podman reads the transports envpack reads (``oci:``, ``oci-archive:``, ``docker-archive:``),
so the image is given to it as the user named it; a ``docker-daemon:`` image (already
exported for the capture) is given as a ``docker save`` archive. The probe then runs as
Docker's does: ``podman run --rm --network none --read-only --entrypoint INTERPRETER``,
with the image's own environment, user and working folder.

**Storage.** Each verify uses a podman storage of its own in a new folder under ``$TMPDIR``
(``--root``/``--runroot``/``--tmpdir``, no event log), removed at the end, rather than the
user's. So nothing is added to or removed from the user's images (an image of the same
name there is never touched or shadowed), and the image podman runs is the one captured
(its ID, the config digest, is checked after loading). The ``overlay`` driver is tried
first: each layer is stored once, so the storage holds about the image's own size. Where
podman cannot use it (rootless without kernel support or ``fuse-overlayfs``, a ``$TMPDIR``
whose filesystem refuses it), the storage is emptied and the ``vfs`` driver used, which
needs neither the kernel's overlay nor a helper and works the same as root and rootless,
at the cost of a full copy of the tree per layer (a 216 MB image of 13 layers: 1.7 GB
stored, against 214 MB with ``overlay``; ``bench/bench_verify_podman.py``). Rootless,
podman maps the image's owners through the user's ``/etc/subuid`` range (``newuidmap``
from ``uidmap``), and the storage is removed from inside that mapping (``podman
unshare``); as root, whatever podman left mounted in it is detached first. podman refuses a
``--runroot`` over 50 characters: under a long ``$TMPDIR`` that small folder of state
goes under ``/tmp`` (the layers stay under ``$TMPDIR``).

**Limits.** podman 4 gives a container more open files and processes (1048576, 32768)
than a machine without ``CAP_SYS_RESOURCE`` lets it raise to, and ``runc`` then fails to
start it (``error setting rlimits``); the exact ceiling is podman's and conmon's own, not
knowable from here. The probe needs little: it gets envpack's own limits capped at 4096,
which lowering never needs a privilege for.

podman's own failures (it cannot load or start the image, with either driver) are
:class:`UsageError`; the interpreter's (missing in the image, crashing) are
:class:`ProbeFailed`, as for Docker.
"""

from __future__ import annotations

import contextlib
import os
import resource
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from envpack.errors import UsageError
from envpack.snapshot.interpreters import ProbeFailed, parse_answer, probe_source

__all__ = ["podman_available", "probe_in_podman"]

_MAX_OUTPUT = 4 * 1024 * 1024
_MAX_RUNROOT = 50  # podman 4's own limit on --runroot
_LIMIT = 4096  # open files, processes: the probe reads a few files and starts at most one
_COMMAND_SECONDS = 600.0  # loading an image of a few hundred MiB into vfs, on a busy machine
# podman's exit codes for its own failure and for a command it cannot run in the image
# (podman-run(1), "Exit Status").
_PODMAN_FAILED = 125
_CANNOT_RUN = (126, 127)
_NOT_FOUND = 127
_MNT_DETACH = 2  # umount2(2): detach now, finish when no longer busy
# Best first: overlay stores each layer once; vfs copies the tree per layer but needs no
# kernel overlay (nor fuse-overlayfs) and works on any filesystem.
_DRIVERS = ("overlay", "vfs")


class _PodmanFailed(UsageError):
    """podman itself could not load or start the image: perhaps only with this storage
    driver, so the next one is tried."""


def podman_available() -> str | None:
    """The ``podman`` program, when installed."""
    return shutil.which("podman")


def probe_in_podman(
    reference: str,
    image_id: str,
    executable: str,
    *,
    timeout: float,
    podman: str | None = None,
) -> dict[str, Any]:
    """The probe's component from ``executable`` run in the image podman reads at
    ``reference`` (``oci:DIR:TAG`` …), which must have the ID ``image_id`` (``sha256:…``)."""
    program = podman or podman_available()
    if program is None:
        raise UsageError("podman is not installed: cannot run the interpreter in the image")
    for driver in _DRIVERS[:-1]:
        # podman's own failure may be this driver's only: the next one is tried.
        with contextlib.suppress(_PodmanFailed):
            return _probe_in_store(program, driver, reference, image_id, executable, timeout)
    return _probe_in_store(program, _DRIVERS[-1], reference, image_id, executable, timeout)


def _probe_in_store(
    program: str, driver: str, reference: str, image_id: str, executable: str, timeout: float
) -> dict[str, Any]:
    """The probe's answer from a new private storage using ``driver``, removed after."""
    store = Path(tempfile.mkdtemp(prefix="envpack-podman-"))
    runroot = store / "run"
    if len(str(runroot)) > _MAX_RUNROOT:
        # podman refuses a longer one (its sockets' paths must fit in 108 bytes): this
        # small folder of state goes under /tmp; the layers stay under $TMPDIR.
        runroot = Path(tempfile.mkdtemp(prefix="envpack-podman-", dir="/tmp"))
    base = _base(program, store, runroot, driver)
    try:
        loaded = _load(base, reference, store)
        if loaded != image_id.removeprefix("sha256:"):
            raise UsageError(
                f"podman loaded image {loaded[:12]} from {reference}, not the one captured "
                f"({image_id.removeprefix('sha256:')[:12]})"
            )
        return _run(base, loaded, executable, store, timeout=timeout)
    finally:
        _remove_store(program, base, store)
        if not runroot.is_relative_to(store):
            shutil.rmtree(runroot, ignore_errors=True)


def _base(program: str, store: Path, runroot: Path, driver: str) -> list[str]:
    return [
        program,
        "--root", str(store / "root"),
        "--runroot", str(runroot),
        "--tmpdir", str(store / "tmp"),
        "--storage-driver", driver,
        "--events-backend", "none",
        "--log-level", "error",
    ]  # fmt: skip


def _env(store: Path) -> dict[str, str]:
    # containers/image copies blobs through $TMPDIR (/var/tmp by default), and rootless
    # keeps its blob-info cache under $XDG_DATA_HOME: both here. (As root that cache is
    # /var/lib/containers/cache, which podman offers no flag to move: it gains the
    # digests of the image's blobs, nothing of their content.)
    return {**os.environ, "TMPDIR": str(store), "XDG_DATA_HOME": str(store / "data")}


def _podman(
    command: Sequence[str], store: Path, *, timeout: float = _COMMAND_SECONDS
) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            command,
            env=_env(store),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        raise UsageError(f"podman did not finish within {timeout:g} s: {command[-1]}") from err
    except OSError as err:
        raise UsageError(f"cannot run podman: {err.strerror or err}") from err


def _load(base: list[str], reference: str, store: Path) -> str:
    """The ID of the image podman loaded from ``reference`` into the private storage."""
    done = _podman([*base, "pull", "--quiet", reference], store)
    if done.returncode != 0:
        raise _PodmanFailed(f"podman could not load the image: {_last_line(done.stderr)}")
    words = done.stdout.decode("utf-8", "replace").split()
    if not words:
        raise UsageError(f"podman pull {reference} printed no image ID")
    return words[-1].removeprefix("sha256:")


def _limits() -> list[str]:
    out = []
    for name, which in (("nofile", resource.RLIMIT_NOFILE), ("nproc", resource.RLIMIT_NPROC)):
        soft, _ = resource.getrlimit(which)
        value = _LIMIT if soft == resource.RLIM_INFINITY else min(soft, _LIMIT)
        out += ["--ulimit", f"{name}={value}:{value}"]
    return out


def _run(
    base: list[str], image: str, executable: str, store: Path, *, timeout: float
) -> dict[str, Any]:
    name = f"envpack-verify-{secrets.token_hex(6)}"
    command = [
        *base, "run", "--rm", "--name", name, "--pull", "never",
        "--network", "none",
        # As `docker run --read-only`: no tmpfs over /tmp, /var/tmp, /run (podman's default),
        # which would hide an environment packed from a folder there (a CI job's).
        "--read-only", "--read-only-tmpfs=false",
        "--label", "io.envpack.verify=probe",
        *_limits(),
        "--entrypoint", executable,
        image, "-c", probe_source(),
    ]  # fmt: skip
    out_path, err_path = store / "probe.out", store / "probe.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        try:
            proc = subprocess.Popen(
                command, env=_env(store), stdin=subprocess.DEVNULL, stdout=out, stderr=err
            )
        except OSError as error:
            raise UsageError(f"cannot run podman: {error.strerror or error}") from error
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise ProbeFailed(
                f"did not answer within {timeout:g} s in the image (hung?); container removed"
            ) from None
    stdout, stderr = _head(out_path), _head(err_path)
    if out_path.stat().st_size > _MAX_OUTPUT:
        raise ProbeFailed("printed too much output; not a Python interpreter?")
    if code == _PODMAN_FAILED:
        raise _PodmanFailed(f"podman could not run the image: {_last_line(stderr)}")
    if code in _CANNOT_RUN and (code == _NOT_FOUND or executable in _last_line(stderr)):
        raise ProbeFailed(f"cannot run in the image{_colon(_last_line(stderr))}")
    if code in _CANNOT_RUN:
        # Not about the interpreter (runc could not set the container up): podman's failure.
        raise _PodmanFailed(f"podman could not run the image: {_last_line(stderr)}")
    if code != 0:
        raise ProbeFailed(f"exited with status {code} in the image{_colon(_last_line(stderr))}")
    return parse_answer(stdout, stderr)


def _head(path: Path) -> bytes:
    with path.open("rb") as stream:
        return stream.read(_MAX_OUTPUT + 1)


def _remove_store(program: str, base: list[str], store: Path) -> None:
    """Stop whatever still runs there (a timed-out probe), then remove the storage."""
    with contextlib.suppress(UsageError):
        _podman([*base, "rm", "--all", "--force", "--time", "0"], store, timeout=120)
    if os.geteuid() != 0:
        # Rootless: the layers belong to the user's subordinate IDs; only inside podman's
        # user namespace can they be removed.
        with contextlib.suppress(UsageError):
            _podman([program, "unshare", "rm", "-rf", "--", str(store)], store, timeout=300)
    else:
        _detach_mounts_under(store)
    shutil.rmtree(store, ignore_errors=True)


def _detach_mounts_under(folder: Path) -> None:
    """Detach whatever is still mounted in ``folder``, deepest first.

    As root, the overlay driver bind-mounts its own folder (``root/overlay``) and mounts
    each container's tree; a podman killed at the wrong moment (a probe past its time)
    leaves them, and the folder could then be neither removed nor emptied.
    """
    inside = [point for point in _mount_points() if point.is_relative_to(folder)]
    if not inside:
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for point in sorted(inside, key=lambda path: len(path.parts), reverse=True):
        libc.umount2(os.fsencode(point), _MNT_DETACH)  # gone already: nothing to do


def _mount_points() -> list[Path]:
    """This process's mount points (/proc/self/mountinfo: the 5th field, octal-escaped)."""
    try:
        with open("/proc/self/mountinfo", "rb") as mountinfo:
            lines = mountinfo.read().splitlines()
    except OSError:
        return []
    points = []
    for line in lines:
        fields = line.split(b" ")
        if len(fields) > 4:
            raw = fields[4].decode("unicode_escape").encode("latin-1")
            points.append(Path(os.fsdecode(raw)))
    return points


def _last_line(data: bytes) -> str:
    lines = [line.strip() for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no message"


def _colon(text: str) -> str:
    return "" if text == "no message" else f": {text}"
