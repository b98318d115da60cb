"""Probe: the Python interpreters the application runs on.

Live, each interpreter describes itself: ``_interpreter_probe.py`` runs inside it with
``-c``, in a temporary folder, with no stdin, with the captured environment (so
``PYTHONPATH`` and ``PYTHONHOME`` count as they would for the application), in its own
process group and under a time limit. An interpreter that crashes, hangs, or prints
something that is not the probe's answer gets **no component** and one ``issues`` entry:
a half-known interpreter in the section would compare as if it were real.

Under ``--root`` nothing is run: :mod:`envpack.snapshot.offline_python` reads the same
facts from files.

Which interpreters: every ``--python`` (a path, a name looked up on the source's PATH, or a
virtualenv folder), the first one primary; without ``--python``, ``$VIRTUAL_ENV/bin/python``
when the source has an active virtualenv, else ``python3`` on the source's PATH — never
envpack's own interpreter unless it is that one. The section key is the path as named
(made absolute), not its symlink target: ``venv/bin/python`` and the base interpreter it
points to are different interpreters.

``ENVPACK_INTERPRETER_TIMEOUT`` (seconds, envpack's own environment) overrides the time
limit; the CLI reads it with :func:`timeout_from_environ`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from envpack.errors import CaptureError, UsageError
from envpack.fsnames import escape
from envpack.snapshot.context import CaptureContext

__all__ = [
    "PROBE_MARKER",
    "Interpreter",
    "ProbeFailed",
    "default_interpreter",
    "describe",
    "parse_answer",
    "probe",
    "probe_source",
    "resolve_python_arg",
    "timeout_from_environ",
]

SECTION = "interpreters"
PROBE_MARKER = "@@envpack-interpreter-probe@@"
TIMEOUT_VARIABLE = "ENVPACK_INTERPRETER_TIMEOUT"
_MAX_OUTPUT = 4 * 1024 * 1024  # the answer is a few kB; more is not the probe talking
_REAP_SECONDS = 5.0


class ProbeFailed(CaptureError):
    """The interpreter did not give a usable answer; the message becomes an issue."""


@dataclass(frozen=True)
class Interpreter:
    """An interpreter to describe: its section key and whether it is the primary one."""

    key: str
    primary: bool
    named: str | None = None
    """The ``--python`` value that named it; ``None`` for the default interpreter."""


def probe(ctx: CaptureContext) -> None:
    """Fill the ``interpreters`` section (live: by running each one; ``--root``: files)."""
    if not ctx.source.is_live:
        from envpack.snapshot import offline_python

        offline_python.probe(ctx)
        return
    section = ctx.sections.setdefault(SECTION, {})
    for interpreter in _selected(ctx):
        ctx.progress(f"describing {interpreter.key}")
        try:
            component = describe(
                interpreter.key, ctx.source.environ, timeout=ctx.options.interpreter_timeout
            )
        except ProbeFailed as err:
            if interpreter.named is not None:
                # The user named it: a capture without it answers another question. Stop
                # here (exit 2) rather than write "0 interpreters; 1 issues" and exit 0.
                raise UsageError(f"--python {interpreter.named}: {err}") from None
            ctx.issue(SECTION, escape(interpreter.key), str(err))
            continue
        component["primary"] = interpreter.primary
        section[escape(interpreter.key)] = component  # a path: recorded form (fsnames)


def timeout_from_environ(environ: Mapping[str, str], default: float) -> float:
    """``ENVPACK_INTERPRETER_TIMEOUT`` as seconds when set, else ``default``."""
    raw = environ.get(TIMEOUT_VARIABLE)
    if raw is None or not raw.strip():
        return default
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 86400:
        raise UsageError(f"{TIMEOUT_VARIABLE}={raw!r}: give a number of seconds above 0")
    return seconds


# -- which interpreters ---------------------------------------------------------------------


def _selected(ctx: CaptureContext) -> list[Interpreter]:
    environ = ctx.source.environ
    if ctx.options.pythons:
        named: dict[str, str] = {}
        for arg in ctx.options.pythons:
            named.setdefault(resolve_python_arg(arg, environ), arg)
        return [Interpreter(key, index == 0, arg) for index, (key, arg) in enumerate(named.items())]
    found = default_interpreter(environ)
    if found is None:
        ctx.issue(
            SECTION,
            "",
            "no interpreter found: VIRTUAL_ENV is not set and there is no python3 on PATH; "
            "name one with --python",
        )
        return []
    return [Interpreter(found, primary=True)]


def resolve_python_arg(arg: str, environ: Mapping[str, str]) -> str:
    """The absolute executable path for a ``--python`` value, or :class:`UsageError`.

    As a shell runs a command: a value with a slash is a path (relative to the working
    folder), a bare name is looked up on the source's PATH. A virtualenv folder stands for
    its ``bin/python``, also a bare one (``--python venv``) that no PATH entry provides:
    a folder is never a command, so naming one is not ambiguous.
    """
    if "/" not in arg:
        found = shutil.which(arg, path=environ.get("PATH", os.defpath))
        if found is None and os.path.isfile(os.path.join(arg, "bin", "python")):
            return os.path.abspath(os.path.join(arg, "bin", "python"))
        if found is None:
            hint = f" (a file here: give ./{arg})" if os.path.isfile(arg) else ""
            raise UsageError(f"--python {arg}: not found on PATH{hint}")
        return os.path.abspath(found)
    path = os.path.abspath(arg)
    if os.path.isdir(path):
        inside = os.path.join(path, "bin", "python")
        if not os.path.exists(inside):
            raise UsageError(f"--python {arg}: a folder without bin/python")
        return inside
    if not os.path.exists(path):
        raise UsageError(f"--python {arg}: no such file")
    return path


def default_interpreter(environ: Mapping[str, str]) -> str | None:
    """``$VIRTUAL_ENV/bin/python`` if the source has one active, else ``python3`` on PATH."""
    venv = environ.get("VIRTUAL_ENV")
    if venv:
        candidate = os.path.join(os.path.abspath(venv), "bin", "python")
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("python3", path=environ.get("PATH", os.defpath))
    return os.path.abspath(found) if found else None


# -- running the probe ----------------------------------------------------------------------


def probe_source() -> str:
    """The text of the script that runs inside the target interpreter."""
    return resources.files("envpack.snapshot").joinpath("_interpreter_probe.py").read_text("utf-8")


def describe(
    executable: str,
    environ: Mapping[str, str],
    *,
    timeout: float,
    wrapper: Sequence[str] = (),
) -> dict[str, Any]:
    """Run the probe inside ``executable``; its component (without ``primary``).

    ``wrapper`` is a command that runs the rest (``bwrap … --``: the interpreter of an
    image's rootfs, in a sandbox); it inherits ``environ``.
    """
    # Names Popen cannot pass (empty, with "=" or NUL) could not reach the app either.
    env = {k: v for k, v in environ.items() if k and "=" not in k and "\0" not in k + v}
    if not wrapper and "PYTHONPATH" in env:
        env["PYTHONPATH"] = _anchored_path_list(env["PYTHONPATH"], os.getcwd())
    with tempfile.TemporaryDirectory(prefix="envpack-probe-") as workdir:
        try:
            proc = subprocess.Popen(
                [*wrapper, executable, "-c", probe_source()],
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group, so a hang is killed whole
            )
        except OSError as err:
            raise ProbeFailed(f"cannot run: {err.strerror or err}") from err
        try:
            out, err_out = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            # Not yet reaped, so its pid still names its group: nothing else can be hit.
            _kill_group(proc)
            raise ProbeFailed(
                f"did not answer within {timeout:g} s (hung?); killed its process group"
            ) from None
    if proc.returncode < 0:
        raise ProbeFailed(f"crashed: killed by signal {_signal_name(-proc.returncode)}")
    if proc.returncode != 0:
        raise ProbeFailed(f"exited with status {proc.returncode}{_last_line(err_out)}")
    return parse_answer(out, err_out)


def _anchored_path_list(value: str, cwd: str) -> str:
    """``PYTHONPATH`` with its relative (and empty) entries made absolute against ``cwd``.

    The probe runs in an empty folder of its own (so ``-c``'s ``''`` entry imports nothing
    of the user's), but the interpreter resolves a relative entry against its working
    folder: ``PYTHONPATH=src`` must read as the app run from here sees it, not as a path in
    the probe's temporary folder (which also made two captures differ).
    """
    return os.pathsep.join(
        entry if os.path.isabs(entry) else os.path.join(cwd, entry) if entry else cwd
        for entry in value.split(os.pathsep)
    )


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode is None:
        try:
            proc.communicate(timeout=_REAP_SECONDS)
        except subprocess.TimeoutExpired:
            # A descendant that left the group still holds the pipes: stop waiting for it.
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
            proc.wait(timeout=_REAP_SECONDS)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


# A line that states the error: "ModuleNotFoundError: No module named 'encodings'",
# "Fatal Python error: ...", "OSError: [Errno 2] ...". Python's fatal errors end with
# "Current thread ... (most recent call first):" and "<no Python frame>", which say nothing.
_ERROR_LINE = re.compile(r"^(?:Fatal Python error:|[A-Za-z_][\w.]*(?:Error|Exception|Exit)\b)")


def _last_line(stderr: bytes) -> str:
    """``": <the useful line>"`` of what a failed interpreter wrote, or ``""``.

    The last line that states an error, else the last line at all.
    """
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line]
    errors = [line for line in lines if _ERROR_LINE.match(line)]
    chosen = errors[-1] if errors else lines[-1] if lines else ""
    return f": {chosen[:300]}" if chosen else ""


_FIELDS = (
    "implementation",
    "version",
    "version_info",
    "executable",
    "real_executable",
    "prefix",
    "base_prefix",
    "virtualenv",
    "platform",
    "soabi",
    "ext_suffix",
    "abi_tag",
    "interpreter_tag",
    "sys_path",
    "site_packages",
    "markers",
)


def parse_answer(out: bytes, err_out: bytes) -> dict[str, Any]:
    """The component in the probe's output (``source`` is ``probe``), else :class:`ProbeFailed`.

    ``err_out`` only gives the reason when there is no answer.
    """
    if len(out) > _MAX_OUTPUT:
        raise ProbeFailed("printed too much output; not a Python interpreter?")
    marker = PROBE_MARKER.encode("ascii")
    index = out.rfind(marker)
    if index < 0:
        raise ProbeFailed(f"gave no answer (not a Python interpreter?){_last_line(err_out)}")
    try:
        data = json.loads(out[index + len(marker) :].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise ProbeFailed(f"gave an unreadable answer ({err})") from err
    if not isinstance(data, dict) or any(name not in data for name in _FIELDS):
        raise ProbeFailed("gave an incomplete answer")
    component: dict[str, Any] = {name: data[name] for name in _FIELDS}
    component["source"] = "probe"
    return component
