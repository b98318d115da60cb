"""Parse dpkg's database of installed packages (``/var/lib/dpkg/status``) as text.

A status file is a sequence of deb822 paragraphs separated by blank lines; a line starting
with a space or tab continues the previous field. Only five single-line fields matter here
(Package, Status, Version, Architecture, Source), so the parser looks at the first word of
each line and skips everything else (descriptions, conffiles) without building it.

Why not python-debian's ``Deb822.iter_paragraphs``: it builds every field of every
paragraph (including multi-line descriptions) into ordered dicts, which measured about
5.5 times slower on a 724-package status file (bench/bench_system_packages.py: 34.5 ms against
6.3 ms for the whole probe), and it is not a dependency of envpack. The format we need is
small enough to parse exactly here.

dpkg may leave records that are not yet folded into ``status`` in ``updates/`` (after an
interrupted run); like ``dpkg-query``, they are applied on top, in numeric order.

A package counts when its files are on disk, not only when it is fully ``installed``: a
package waiting for a trigger (``man-db`` after every install), unpacked but not yet
configured, or stopped half-way is still there, and dropping it made the diff call it
removed while apt ran. Its state is recorded instead (``DpkgPackage.state``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = [
    "INSTALLED",
    "ON_DISK_STATES",
    "DpkgPackage",
    "installed_packages",
    "on_disk_state",
    "parse_paragraphs",
]

_FIELDS = frozenset({"package", "status", "version", "architecture", "source"})

INSTALLED = "installed"
ON_DISK_STATES = frozenset(
    {
        INSTALLED,
        "triggers-pending",  # configured; a trigger it is interested in was activated
        "triggers-awaited",  # configured; waits for another package's trigger processing
        "half-configured",  # unpacked; configuring started and did not finish (postinst)
        "unpacked",  # files in place, not configured yet
        "half-installed",  # unpacking (or removal) started and did not finish: some files
    }
)
"""dpkg states (dpkg-query(1), "Package states") in which the package's files are on
disk. ``not-installed`` and ``config-files`` (only conffiles left after a remove) are not."""


@dataclass(frozen=True)
class DpkgPackage:
    """One installed binary package."""

    name: str
    version: str
    architecture: str
    source: str
    """The source package (``glibc`` for ``libc6``); the package's own name when the
    paragraph has no ``Source`` field, which is dpkg's rule too."""
    state: str = INSTALLED
    """The dpkg state, ``installed`` for a package fully installed; with ``, reinstreq``
    appended when dpkg flagged it as needing reinstallation (an error during unpack)."""


def parse_paragraphs(text: str) -> Iterator[dict[str, str]]:
    """The wanted fields of each paragraph, keys lower-cased (field names are
    case-insensitive in deb822)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line or line.isspace():
            if fields:
                yield fields
                fields = {}
            continue
        if line[0] in " \t":
            continue  # a continuation line: only multi-line fields have them
        name, sep, value = line.partition(":")
        if sep:
            key = name.lower()
            if key in _FIELDS:
                fields[key] = value.strip()
    if fields:
        yield fields


def on_disk_state(status: str) -> str | None:
    """The state to record from a ``Status`` value, or ``None`` when no files are on disk.

    ``Status`` is "want eflag state". The wanted action does not matter ("install", or
    "hold" for a pinned package, still installed; "deinstall" for one whose removal has
    not run yet, still on disk); the error flag ``reinstreq`` is kept beside the state.
    """
    words = status.split()
    if len(words) != 3 or words[2] not in ON_DISK_STATES:
        return None
    state, eflag = words[2], words[1]
    return state if eflag == "ok" else f"{state}, {eflag}"


def installed_packages(texts: Iterable[str]) -> list[DpkgPackage]:
    """Packages whose files are on disk (:data:`ON_DISK_STATES`), from the status text,
    then each ``updates/`` record in order.

    A later paragraph for the same package and architecture replaces an earlier one.
    """
    latest: dict[tuple[str, str], dict[str, str]] = {}
    for text in texts:
        for fields in parse_paragraphs(text):
            name = fields.get("package")
            if name:
                latest[(name, fields.get("architecture", ""))] = fields
    packages: list[DpkgPackage] = []
    for (name, arch), fields in latest.items():
        state = on_disk_state(fields.get("status", ""))
        if state is None:
            continue
        # "Source: gcc-12 (12.2.0-14)" names a source version when it differs: keep the name.
        source = fields.get("source", "").split(" ", 1)[0] or name
        packages.append(DpkgPackage(name, fields.get("version", ""), arch, source, state))
    packages.sort(key=lambda p: (p.name, p.architecture))
    return packages
