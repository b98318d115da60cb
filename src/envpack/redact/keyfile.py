"""The HMAC key behind every fingerprint: ``ENVPACK_REDACT_KEY`` or a per-user key file.

Whoever holds the key can test guesses against a fingerprint, so the file must be the
user's alone: it is created 0600 in a 0700 folder, and refused (one line, exit 2) when it
is a symlink, is not owned by the user, can be read or written by group or others, or
sits in a folder that others can write to (they could swap the file).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from envpack.errors import UsageError

__all__ = ["KEY_ENV", "RedactionKeyError", "load_redaction_key"]

KEY_ENV = "ENVPACK_REDACT_KEY"
_MAX_KEY_BYTES = 4096


class RedactionKeyError(UsageError):
    """The key file cannot be used safely or at all (the CLI exits 2)."""


def _default_key_file() -> Path:
    from platformdirs import user_config_path

    return user_config_path("envpack") / "redact.key"


def load_redaction_key(
    environ: Mapping[str, str] | None = None, key_file: Path | None = None
) -> bytes:
    """The HMAC key: ``ENVPACK_REDACT_KEY`` if set, else the per-user key file.

    The key file is created on first use (0600, 32 random bytes as hex, in a 0700
    folder) in a way that is safe when two captures start at once: the first writer wins
    and everyone reads its key.
    """
    env = os.environ if environ is None else environ
    from_env = env.get(KEY_ENV)
    if from_env:
        return from_env.encode("utf-8")
    path = key_file or _default_key_file()
    try:
        key = _read_key(path)
    except FileNotFoundError:
        return _create_key_file(path)
    except OSError as err:
        raise RedactionKeyError(
            f"cannot read the redaction key {path}: {err.strerror}; set {KEY_ENV}"
        ) from err
    if not key:
        raise RedactionKeyError(f"redaction key {path} is empty: remove it or set {KEY_ENV}")
    return key


def _read_key(path: Path) -> bytes:
    """The key in ``path`` after checking that only this user can read or replace it."""
    _check_folder(path.parent)
    # O_NOFOLLOW: a symlink planted in place of the key is refused, not followed.
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NOCTTY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as stream:
        st = os.fstat(stream.fileno())
        _check_file(path, st)
        return stream.read(_MAX_KEY_BYTES).strip()


def _check_file(path: Path, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise RedactionKeyError(f"redaction key {path} is not a regular file; set {KEY_ENV}")
    if st.st_uid != os.geteuid():
        raise RedactionKeyError(
            f"redaction key {path} is owned by uid {st.st_uid}, not by you: "
            f"remove it or set {KEY_ENV}"
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise RedactionKeyError(
            f"redaction key {path} has mode {mode:04o}: other users could read it and test "
            f"guesses against every fingerprint; run chmod 600 {path}"
        )


def _check_folder(folder: Path) -> None:
    try:
        st = os.stat(folder)
    except FileNotFoundError:
        return  # nothing to check yet: the file will be created
    mode = stat.S_IMODE(st.st_mode)
    if st.st_uid not in (os.geteuid(), 0):
        raise RedactionKeyError(
            f"redaction key folder {folder} is owned by uid {st.st_uid}, not by you; set {KEY_ENV}"
        )
    if mode & 0o022:
        raise RedactionKeyError(
            f"redaction key folder {folder} has mode {mode:04o}: other users could replace "
            f"the key; run chmod 700 {folder}"
        )


def _create_key_file(path: Path) -> bytes:
    key = secrets.token_hex(32).encode("ascii")
    folder = path.parent
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)
        _check_folder(folder)
        tmp = folder / f".{path.name}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as stream:
            stream.write(key)
        try:
            # link() fails if another process created the key first; then use theirs.
            os.link(tmp, path)
        except FileExistsError:
            key = _read_key(path)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
    except OSError as err:
        raise RedactionKeyError(
            f"cannot create the redaction key {path}: {err.strerror}; set {KEY_ENV}"
        ) from err
    return key
