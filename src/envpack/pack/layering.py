"""Split a plan's files into image layers by owner and change rate.

Layers are ordered from what changes least to what changes most, so a rebuild after an
application change re-sends only the top layers:

1. ``base`` — the generated ``/etc`` files, ``/tmp``, the package database;
2. system libraries by owning package (``syslib:<package>``); packages smaller than
   :data:`SMALL_LAYER` together in one ``syslib:small`` layer, with the dynamic loader;
3. ``python`` — the interpreter and its standard library;
4. third-party distributions: each one of at least :data:`SMALL_LAYER` in its own
   ``site-packages:<dist>`` layer, the others together in ``site-packages``;
5. ``app`` — the application;
6. ``config`` — the captured config files;
7. ``envpack`` — the captured manifest (new at every capture).

Bytecode goes with the sources it was compiled from (``bytecode:<group>``). A hardlinked
file and its links always share one layer (a link entry may only name a file of its own
layer); a layer repeats the plan's entries of the folders above its files, so a folder's
mode (``/root`` 0700, ``/tmp`` 1777) is the same whichever layer is on top. And whatever
the input there are at most ``max_layers`` layers: the smallest pair of neighbouring
layers is merged until the count fits, which keeps the order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from envpack.errors import PackError
from envpack.oci.tarlayer import TarEntry
from envpack.pack.plan import PlannedFile

__all__ = ["MAX_LAYERS", "SMALL_LAYER", "LayerGroup", "group_files", "layer_name", "tar_order"]

MAX_LAYERS = 100
"""Docker refuses images deeper than ~125 layers; 100 leaves room for layers built on top."""

SMALL_LAYER = 5 * 1024 * 1024
"""Below 5 MiB a package's own layer costs more than it saves: every layer is one more
download round trip, one more overlay mount and one more cache key, and nix and
nix2container users measured layers this small to defeat caching rather than help it
(BUILD-NOTES.md). Smaller system packages share one layer."""

# Bottom to top: what changes least first. Names not listed (a group a newer planner
# invents) go just below the application.
_ORDER = ("base", "syslib", "python", "site-packages", "other", "app", "config", "envpack")
_SMALL_SYSLIBS = "syslib:small"
_SITE_PACKAGES = "site-packages"
_CATCH_ALL = {"syslib": _SMALL_SYSLIBS, "site-packages": _SITE_PACKAGES}


@dataclass(frozen=True)
class LayerGroup:
    """The files of one layer, with the name its history entry and report show."""

    name: str
    files: tuple[PlannedFile, ...]

    @property
    def size(self) -> int:
        """Bytes of file content (uncompressed)."""
        return sum(f.entry.size for f in self.files if f.entry.kind == "file")

    def entries(self) -> list[TarEntry]:
        """The tar entries of this layer (the tar writer orders them)."""
        return [f.entry for f in self.files]


def tar_order(path: str) -> tuple[str, ...]:
    """The order of entries in a layer: by path component, so parents come first."""
    return tuple(part for part in path.split("/") if part)


def layer_name(group: str) -> str:
    """The layer a planner group belongs to (before small packages are merged)."""
    if group.startswith("bytecode:"):
        group = group[len("bytecode:") :]
    if group in ("interpreter", "stdlib"):
        return "python"
    if group == "loader":
        return _SMALL_SYSLIBS
    return group


def _tier(name: str) -> int:
    head = name.split(":", 1)[0]
    return _ORDER.index(head) if head in _ORDER else _ORDER.index("other")


def group_files(
    files: Iterable[PlannedFile],
    *,
    max_layers: int = MAX_LAYERS,
    small_layer: int = SMALL_LAYER,
) -> list[LayerGroup]:
    """``files`` as at most ``max_layers`` non-empty layers, bottom layer first."""
    if max_layers < 1:
        raise ValueError("max_layers must be at least 1")
    files = list(files)
    dists = _distributions(files)
    by_name: dict[str, list[PlannedFile]] = {}
    for planned in files:
        name = layer_name(planned.group)
        if name == _SITE_PACKAGES:
            name = _distribution_layer(planned, dists)
        by_name.setdefault(name, []).append(planned)
    _keep_hardlinks_together(by_name)
    _merge_small(by_name, small_layer)
    names = sorted((n for n in by_name if by_name[n]), key=_position)
    groups = [LayerGroup(n, tuple(by_name[n])) for n in names]
    groups = _fit(groups, max_layers)
    dirs = {f.entry.path: f for g in groups for f in g.files if f.entry.kind == "dir"}
    return [LayerGroup(g.name, _with_parents(g.files, dirs)) for g in groups]


def _position(name: str) -> tuple[int, bool, str]:
    # Within a tier the shared layer of small members comes last: a big package or
    # distribution (libc6, numpy) changes less often than one of the many small ones.
    return (_tier(name), name in _CATCH_ALL.values(), name)


def _distributions(files: list[PlannedFile]) -> dict[str, str]:
    """Image path → the distribution whose RECORD lists it."""
    return {f.entry.path: f.origin[len("dist:") :] for f in files if f.origin.startswith("dist:")}


def _distribution_layer(planned: PlannedFile, dists: dict[str, str]) -> str:
    """``site-packages:<dist>`` for a distribution's file or bytecode, else ``site-packages``.

    Big distributions get their own layer (numpy alone is tens of MB): it is cached on its
    own, and it compresses in parallel with the rest.
    """
    path = planned.entry.path
    dist = dists.get(path) or dists.get(_pyc_source(path)) or _top_level(path)
    return f"{_SITE_PACKAGES}:{dist}" if dist else _SITE_PACKAGES


def _top_level(path: str) -> str | None:
    """The top-level name a file of a site-packages folder belongs to, from its path.

    A virtualenv is shipped whole, so most of its files carry no ``dist:`` origin:
    ``numpy/…``, ``numpy.libs/…`` and ``numpy-2.1.3.dist-info/…`` all give ``numpy``.
    Files at the top of site-packages (``six.py``, ``*.pth``) give ``None``.
    """
    for marker in ("/site-packages/", "/dist-packages/"):
        where = path.find(marker)
        if where >= 0:
            top, slash, _ = path[where + len(marker) :].partition("/")
            if not slash or top == "__pycache__":
                return None
            if top.endswith((".dist-info", ".egg-info")):
                top = top.split("-", 1)[0]
            return top.removesuffix(".libs").lower().replace("-", "_")
    return None


def _pyc_source(path: str) -> str:
    """The ``.py`` a ``.pyc`` was compiled from (``__pycache__/x.cpython-311.pyc`` or 2.7's
    ``x.pyc``); other paths unchanged."""
    if not path.endswith(".pyc"):
        return path
    folder, _, name = path.rpartition("/")
    if folder.endswith("/__pycache__"):
        return f"{folder[: -len('/__pycache__')]}/{name.split('.', 1)[0]}.py"
    return path[:-1]


def _merge_small(by_name: dict[str, list[PlannedFile]], small_layer: int) -> None:
    """Members of a tier (``syslib:<package>``, ``site-packages:<dist>``) smaller than
    ``small_layer`` go into the tier's shared layer."""
    for name in sorted(by_name):
        head = name.split(":", 1)[0]
        shared = _CATCH_ALL.get(head)
        if shared is None or name == shared:
            continue
        if sum(f.entry.size for f in by_name[name] if f.entry.kind == "file") < small_layer:
            by_name.setdefault(shared, []).extend(by_name.pop(name))


def _keep_hardlinks_together(by_name: dict[str, list[PlannedFile]]) -> None:
    """Move every hardlink into the layer of the file it links to."""
    home: dict[str, str] = {}
    for name, members in by_name.items():
        for planned in members:
            if planned.entry.kind != "hardlink":
                home[planned.entry.path] = name
    for name in list(by_name):
        staying: list[PlannedFile] = []
        for planned in by_name[name]:
            entry = planned.entry
            if entry.kind != "hardlink":
                staying.append(planned)
                continue
            target = home.get(entry.linkname)
            if target is None:
                raise PackError(
                    f"{entry.path} is a hardlink to {entry.linkname}, which the image does not hold"
                )
            if target == name:
                staying.append(planned)
            else:
                by_name[target].append(planned)
        by_name[name] = staying


def _with_parents(
    files: tuple[PlannedFile, ...], dirs: dict[str, PlannedFile]
) -> tuple[PlannedFile, ...]:
    """``files`` plus the plan's own entries of their parent folders, where it has them.

    The tar writer adds a missing parent as a 0755 folder, and in a container the upper
    layer's copy of a folder wins: ``/root`` (0700) or ``/tmp`` (1777) would change as soon
    as a later layer holds anything below them. Repeating the plan's entry keeps them.
    """
    have = {f.entry.path for f in files}
    extra: dict[str, PlannedFile] = {}
    for planned in files:
        parent = planned.entry.path.rsplit("/", 1)[0]
        while parent and parent not in have and parent not in extra:
            if parent in dirs:
                extra[parent] = dirs[parent]
            parent = parent.rsplit("/", 1)[0]
    return files + tuple(extra[p] for p in sorted(extra, key=tar_order))


def _fit(groups: list[LayerGroup], max_layers: int) -> list[LayerGroup]:
    """Merge the smallest pair of neighbours until ``max_layers`` layers remain.

    Neighbours of one tier (two system packages) merge first: the application or the
    config, small as they are, keep their own layer as long as any tier has two.
    """
    groups = list(groups)
    while len(groups) > max_layers:
        pairs = [
            i for i in range(len(groups) - 1) if _tier(groups[i].name) == _tier(groups[i + 1].name)
        ]
        if not pairs:
            pairs = list(range(len(groups) - 1))
        low = min(pairs, key=lambda i: (groups[i].size + groups[i + 1].size, i))
        first, second = groups[low], groups[low + 1]
        # "a..c": the layers from a through c, in order; names stay short after many merges.
        name = f"{first.name.split('..')[0]}..{second.name.split('..')[-1]}"
        groups[low : low + 2] = [LayerGroup(name, first.files + second.files)]
    return groups
