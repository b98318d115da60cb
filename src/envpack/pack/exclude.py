"""Which files an image leaves out by default, and the user's ``--exclude`` globs.

Defaults leave out what no application runs on: the standard library's own tests, IDLE,
Tk bindings when no Tk library is there to load, ``ensurepip``'s bundled wheels (only
needed to make new virtualenvs), static libraries, C headers and man pages. The stdlib
rules apply to the standard library folder only — never to a ``tests/`` package of a
third-party distribution, which its code may import.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["NOT_SHIPPED", "ExcludeRules"]

NOT_SHIPPED = "not part of the image"
"""A reason that is not listed: the folder never belonged to the image (the base
interpreter's site-packages that a virtualenv does not use)."""

# Folders of the standard library that are tests: test/ at the top, and the test
# packages nested in other stdlib packages (ctypes/test, lib2to3/tests, idlelib/idle_test).
_STDLIB_TEST_NAMES = frozenset({"test", "tests", "idle_test"})
_HEADER_SUFFIXES = (".h", ".hpp", ".hxx", ".hh")


@dataclass(frozen=True)
class ExcludeRules:
    """Decide, by image path, whether a file is left out and why."""

    stdlib: Sequence[str] = ()
    """The standard library folders (``/…/lib/python3.11``), without a final slash."""
    site_packages: Sequence[str] = ()
    """Folders under a stdlib folder that are not stdlib (a system Python's site-packages)."""
    tk_present: bool = False
    globs: Sequence[str] = ()

    def __call__(self, path: str, size: int) -> str | None:
        """The reason ``path`` is left out, or ``None``; a folder's path ends with ``/``."""
        bare = path.rstrip("/")
        for glob in self.globs:
            if fnmatch.fnmatchcase(bare, glob) or fnmatch.fnmatchcase(path, glob):
                return f"--exclude {glob}"
        stdlib_rel = self._stdlib_relative(bare)
        if stdlib_rel is not None:
            reason = self._stdlib_reason(stdlib_rel, is_dir=path.endswith("/"))
            if reason is not None:
                return reason
        if path.endswith("/"):
            return None
        name = bare.rsplit("/", 1)[-1]
        if name.endswith(".a"):
            return "static library"
        if name.endswith(_HEADER_SUFFIXES) and "/include/" in bare:
            return "C header"
        if "/share/man/" in bare or "/man/man" in bare:
            return "man page"
        return None

    def _stdlib_relative(self, path: str) -> str | None:
        for folder in self.site_packages:
            if path == folder or path.startswith(folder + "/"):
                return None
        for folder in self.stdlib:
            if path.startswith(folder + "/"):
                return path[len(folder) + 1 :]
        return None

    def _stdlib_reason(self, rel: str, *, is_dir: bool) -> str | None:
        parts = rel.split("/")
        top = parts[0]
        if top in ("site-packages", "dist-packages"):
            return NOT_SHIPPED  # used ones are in site_packages and never get here
        folders = parts if is_dir else parts[:-1]
        if any(part in _STDLIB_TEST_NAMES for part in folders):
            return "standard library tests"
        if top == "idlelib":
            return "idlelib (IDLE)"
        if top == "ensurepip":
            return "ensurepip (bundled wheels, only to make virtualenvs)"
        if top == "turtledemo":
            return "turtledemo"
        if not self.tk_present:
            if top == "tkinter" or (top == "lib-tk" and is_dir):
                return "tkinter (no Tk library)"
            name = parts[-1]
            if top == "lib-dynload" and name.startswith("_tkinter"):
                return "tkinter (no Tk library)"
            if top == "lib-tk":
                return "tkinter (no Tk library)"
        return None
