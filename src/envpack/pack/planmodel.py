"""The values a plan is made of: planned files, exclusions, drift, options and the plan.

They live apart from :mod:`envpack.pack.plan` so the modules that build a plan (file set,
dlopen extras, base files …) can use them without importing the planner itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from envpack.oci.tarlayer import TarEntry

__all__ = [
    "DEFAULT_EPOCH",
    "Drifted",
    "Excluded",
    "Plan",
    "PlanOptions",
    "PlannedFile",
]

DEFAULT_EPOCH = 1577836800
"""2020-01-01T00:00:00Z: file times are clamped to it when ``SOURCE_DATE_EPOCH`` is unset.

A fixed value keeps builds identical from day to day; not 0 or 1980, because some programs
(and zip) refuse or mishandle very old times (apko met this and went back to real times).
"""


@dataclass(frozen=True)
class PlannedFile:
    """One entry of the image and why it is there."""

    entry: TarEntry
    """Path in the image == path in the source (absolute paths kept), clamped mtime."""
    group: str
    """The layer group: ``base``, ``loader``, ``syslib:<package>``, ``interpreter``,
    ``stdlib``, ``site-packages``, ``app``, ``config``, ``bytecode:<group>``."""
    origin: str
    """Why it is in: ``interpreter``, ``dist:<name>``, ``library:<soname>``,
    ``dlopen:<what>``, ``generated``, ``app``, ``config``, ``include``, ``shebang``."""
    source_path: str | None = None
    """The path read in the Source (``None`` for generated content)."""


@dataclass(frozen=True)
class Excluded:
    """A file left out, its size and the rule that left it out."""

    path: str
    size: int
    reason: str


@dataclass(frozen=True)
class Drifted:
    """A packed file that changed since the capture."""

    path: str
    reason: str


@dataclass(frozen=True)
class PlanOptions:
    """What the command line asks of the plan."""

    apps: Sequence[tuple[str, str]] = ()
    """(host folder, destination in the image)."""
    include: Sequence[str] = ()
    """Extra paths inside the source: binaries, files, folders."""
    exclude: Sequence[str] = ()
    """Globs on image paths."""
    include_secrets: bool = False
    allow_drift: bool = False
    user: str = ""
    """The image's user (``nonroot``, ``65532``, ``65532:65532``); checked against the
    interpreter's parent folders."""
    source_date_epoch: int = DEFAULT_EPOCH
    progress: Callable[[str, int, int], None] | None = None
    """(phase, done, total)."""
    entrypoint: Sequence[str] = ()
    """The image's entrypoint and cmd: binaries they name are shipped with their closure."""
    use_cache: bool = True
    """Use the hash cache and the bytecode cache (``--no-cache`` turns both off)."""
    cache_dir: Path | None = None
    bytecode: bool = True
    """Generate ``.pyc`` files for the shipped sources."""


@dataclass(frozen=True)
class Plan:
    """Every file of the image, and what the report says about how they were chosen."""

    files: tuple[PlannedFile, ...]
    """Sorted by path, no duplicates; hardlinks as kind ``hardlink`` within one group."""
    excluded: tuple[Excluded, ...]
    dlopen_added: tuple[str, ...]
    secret_configs: tuple[str, ...]
    """Config files holding secrets: left out, or in with ``include_secrets``."""
    drift: tuple[Drifted, ...]
    """Empty unless ``allow_drift`` (otherwise drift raises PackError)."""
    interpreter: str
    """The primary interpreter's path in the image."""
    env: Mapping[str, str]
    """LANG, SSL_CERT_FILE, PATH … (never a captured variable)."""
    manifest_digest: str
    """``sha256:<hex>`` of the manifest's canonical bytes."""
    notes: tuple[str, ...] = field(default=())
    """What the report should say (bytecode skipped, files not readable …)."""

    def paths(self) -> set[str]:
        return {planned.entry.path for planned in self.files}
