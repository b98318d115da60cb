"""What every probe receives: the source, the options, and where to put its findings."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from envpack.manifest import Issue, Section
from envpack.redact import Redactor
from envpack.snapshot.source import Source

__all__ = ["CaptureContext", "CaptureOptions", "Progress"]

Progress = Callable[[str], None]
T = TypeVar("T")


def _silent(_: str) -> None:
    return None


@dataclass(frozen=True)
class CaptureOptions:
    """Everything ``envpack capture`` can be asked for, as plain data."""

    pythons: tuple[str, ...] = ()
    """``--python`` paths (inside the source under ``--root``); empty: the default one."""
    label: str | None = None
    verify: bool = False
    """``--verify``: check installed files against RECORD hashes."""
    env_allow: tuple[str, ...] = ()
    """``--env-allow`` glob patterns: when given, only matching variables are kept."""
    env_deny: tuple[str, ...] = ()
    """``--env-deny`` glob patterns: matching variables are dropped."""
    binaries: tuple[str, ...] = ()
    """``--bin`` extra executables, beside those on PATH."""
    probe_versions: bool = False
    """``--probe-versions``: run ``X --version`` (live host only, time-boxed)."""
    config_globs: tuple[str, ...] = ()
    """``--config`` globs, beside the default config files and envpack.toml's list."""
    use_cache: bool = True
    """``--no-cache`` turns the hash cache off."""
    cache_dir: Path | None = None
    """Where the hash cache lives; ``None``: the user cache folder."""
    only: frozenset[str] | None = None
    """Capture only these sections (``--only``); ``None``: all of them."""
    interpreter_timeout: float = 20.0
    """Seconds a target interpreter may take to describe itself."""


@dataclass
class CaptureContext:
    """The state one capture shares between its probes."""

    source: Source
    options: CaptureOptions
    redactor: Redactor
    sections: dict[str, Section] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)
    progress: Progress = _silent
    _shared: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _deferred: list[Callable[[], None]] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        # A probe run on its own (tests, library use) is never closed by capture();
        # the shared objects are still closed when the context goes away.
        weakref.finalize(self, _close_all, self._shared)

    def shared(self, name: str, factory: Callable[[], T]) -> T:
        """An object several probes of this capture share (the hash cache, the loader's
        resolver, the owner index), made by ``factory`` on first use."""
        if name not in self._shared:
            self._shared[name] = factory()
        return cast("T", self._shared[name])

    def defer(self, step: Callable[[], None]) -> None:
        """Run ``step`` once every probe has run (:meth:`finish`).

        A probe that started background work (hashing its files) defers collecting it, so
        the next probes run meanwhile instead of waiting for the last file to be hashed.
        """
        self._deferred.append(step)

    def finish(self) -> None:
        """Run the deferred steps, in the order they were deferred."""
        while self._deferred:
            self._deferred.pop(0)()

    def close(self) -> None:
        """Close what the probes shared (the hash cache writes its last rows)."""
        _close_all(self._shared)

    def issue(self, probe: str, path: str, reason: str) -> None:
        """Record something that could not be read, and carry on.

        A reason may quote what was read (a bad line, a tool's message): it goes through
        the redaction policy like any captured value, and so does the path.
        """
        self.issues.append(Issue(probe, self.redactor.text(path), self.redactor.text(reason)))

    def wants(self, section: str) -> bool:
        """Whether the probe of ``section`` runs: asked for, and applicable to the source."""
        if section in self.source.not_applicable:
            return False
        return self.options.only is None or section in self.options.only


def _close_all(shared: dict[str, Any]) -> None:
    for value in list(shared.values()):
        close = getattr(value, "close", None)
        if callable(close):
            close()
    shared.clear()
