"""An image's layers applied in order, as an in-memory tree of what the headers say.

Nothing here touches the host file system: a layer's members become nodes (kind, mode,
owner, size, mtime, symlink target, and where the content lies in the layer's data file).
The tree is built the way a container runtime unpacks layers (image-spec ``layer.md``):

- a ``.wh.NAME`` entry removes ``NAME`` (and what is under it) of the layers below; a
  ``.wh..wh..opq`` entry empties its folder of what the layers below put there; both apply
  to the lower layers only, whatever their place in the tar;
- a later entry with the same path replaces the earlier one (a folder over a folder keeps
  its children);
- a missing parent folder is made, as ``tar -x`` does;
- a parent that is a symlink is followed *inside* the image (containerd does the same):
  an entry written "through" ``link -> /etc`` lands at the image's ``/etc``.

Hostile entries are neutralised or refused, each with one line in :attr:`ImageView.problems`:
an absolute name is read relative to the image root; a name that climbs out with ``..`` is
skipped; a hardlink to a path outside the image or to nothing is skipped; device nodes and
FIFOs are kept as nodes that are never opened; a sparse file is kept but not read. Paths
are resolved the way the kernel resolves them in a chroot: an absolute symlink restarts at
the image root and ``..`` stops there.
"""

from __future__ import annotations

import errno
import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from envpack.oci.layertar import Member

__all__ = ["MAX_SYMLINKS", "ImageView", "Lookup", "Node", "normalise"]

MAX_SYMLINKS = 40  # the kernel's own limit (ELOOP)
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"
_MAX_PROBLEMS_PER_KIND = 20  # past this, one line says how many more of that kind


class Node:
    """One file of the image, as its last layer's header describes it."""

    __slots__ = (
        "data",
        "gid",
        "ino",
        "kind",
        "major",
        "minor",
        "mode",
        "mtime",
        "size",
        "sparse",
        "target",
        "uid",
    )

    def __init__(
        self,
        kind: str,
        mode: int,
        *,
        ino: int,
        uid: int = 0,
        gid: int = 0,
        size: int = 0,
        mtime: int = 0,
        target: str = "",
        data: tuple[int, int] | None = None,
        major: int = 0,
        minor: int = 0,
        sparse: bool = False,
    ) -> None:
        self.kind = kind
        self.mode = mode & 0o7777
        self.ino = ino
        self.uid = uid
        self.gid = gid
        self.size = size
        self.mtime = mtime
        self.target = target
        self.data = data
        """``(data file number, offset)`` of a regular file's content."""
        self.major = major
        self.minor = minor
        self.sparse = sparse


@dataclass(frozen=True)
class Lookup:
    """Where a path leads: its real path in the image and the node there (or ``None``)."""

    path: str
    node: Node | None
    escaped: bool = False
    """A ``..`` tried to climb above the image root and was held there."""


def normalise(name: str) -> tuple[str | None, bool]:
    """``("/a/b", was_absolute)`` for a tar name; ``None`` when ``..`` would climb out."""
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None, name.startswith("/")
            parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts), name.startswith("/")


@dataclass
class ImageView:
    """The merged tree of an image's layers (paths are absolute, ``/`` is the root)."""

    nodes: dict[str, Node] = field(default_factory=dict)
    children: dict[str, dict[str, None]] = field(default_factory=dict)
    """A folder's path → its entry names (an insertion-ordered set)."""
    problems: list[tuple[str, str]] = field(default_factory=list)
    """``(path, reason)`` for every entry neutralised or refused."""
    _counts: dict[str, int] = field(default_factory=dict, repr=False)
    _next_ino: int = 2

    def __post_init__(self) -> None:
        if "/" not in self.nodes:
            self.nodes["/"] = Node("dir", 0o755, ino=1)
            self.children["/"] = {}

    # -- building -------------------------------------------------------------------------

    def _problem(self, kind: str, path: str, reason: str) -> None:
        count = self._counts.get(kind, 0) + 1
        self._counts[kind] = count
        if count <= _MAX_PROBLEMS_PER_KIND:
            self.problems.append((path, reason))

    def finish(self) -> None:
        """Add one line per kind of problem past the per-kind cap."""
        for kind, count in sorted(self._counts.items()):
            if count > _MAX_PROBLEMS_PER_KIND:
                extra = count - _MAX_PROBLEMS_PER_KIND
                self.problems.append(("/", f"{extra} more entries: {kind}"))

    def apply_layer(self, members: Iterable[Member], data_files: Sequence[int], where: str) -> None:
        """Apply one layer above the ones applied before (``where`` names it in problems).

        ``data_files[member.source]`` is the number a node records for its content's file.
        """
        opaque, whiteouts, entries = self._sorted_out(members, where)
        # Whiteouts first: they hide the lower layers only, wherever they sit in the tar.
        for folder in opaque:
            found = self._walk(folder, follow_last=True)
            if found.node is not None and found.node.kind == "dir":
                for name in list(self.children.get(found.path, {})):
                    self._remove(_join(found.path, name))
        for path in whiteouts:
            found = self._walk(path, follow_last=False)
            if found.node is not None and found.path != "/":
                self._remove(found.path)
        seen: set[str] = set()
        for path, member in entries:
            self._add(path, member, data_files[member.source], where, seen)

    def _sorted_out(
        self, members: Iterable[Member], where: str
    ) -> tuple[list[str], list[str], list[tuple[str, Member]]]:
        """A layer's opaque folders, whiteout paths and other entries (names normalised)."""
        opaque: list[str] = []
        whiteouts: list[str] = []
        entries: list[tuple[str, Member]] = []
        for member in members:
            path, absolute = normalise(member.name)
            if path is None:
                self._problem(
                    "names climbing out with ..",
                    member.name,
                    f"{where}: the name climbs out of the image with '..'; entry skipped",
                )
                continue
            if absolute:
                self._problem(
                    "absolute names",
                    member.name,
                    f"{where}: absolute name; read as {path} inside the image",
                )
            base = posixpath.basename(path)
            if base == _OPAQUE:
                opaque.append(posixpath.dirname(path))
            elif base.startswith(_WHITEOUT + _WHITEOUT):
                continue  # other AUFS bookkeeping (.wh..wh.plnk, .wh..wh.aufs)
            elif base.startswith(_WHITEOUT):
                whiteouts.append(posixpath.join(posixpath.dirname(path), base[len(_WHITEOUT) :]))
            elif path != "/" or member.kind == "dir":
                entries.append((path, member))
        return opaque, whiteouts, entries

    def _add(self, path: str, member: Member, data_file: int, where: str, seen: set[str]) -> None:
        parent = self._parent_folder(posixpath.dirname(path), member.name, where)
        if parent is None:
            return
        real = _join(parent, posixpath.basename(path)) if path != "/" else "/"
        if real in seen:
            self._problem(
                "duplicate entries",
                member.name,
                f"{where}: a second entry for {real}; the later one is used",
            )
        seen.add(real)
        if member.kind == "unknown":
            self._problem("unknown entry types", member.name, f"{where}: unknown tar entry type")
            return
        if member.kind == "hardlink":
            node = self._hardlink(member, where)
            if node is None:
                return
        else:
            node = self._node(member, data_file)
            if member.kind in ("char-device", "block-device", "fifo"):
                self._problem(
                    "device nodes and FIFOs",
                    member.name,
                    f"{where}: a {member.kind}; recorded, never created or opened",
                )
            elif member.sparse:
                self._problem(
                    "sparse files",
                    member.name,
                    f"{where}: a sparse file declaring {member.size} bytes; recorded, not read",
                )
        existing = self.nodes.get(real)
        if existing is not None:
            if existing.kind == "dir" and node.kind == "dir":
                self.nodes[real] = node
                return
            self._remove(real)
        self.nodes[real] = node
        self.children[parent][posixpath.basename(real)] = None
        if node.kind == "dir":
            self.children[real] = {}

    def _new_ino(self) -> int:
        self._next_ino += 1
        return self._next_ino

    def _node(self, member: Member, data_file: int) -> Node:
        kind = member.kind
        return Node(
            kind,
            member.mode,
            ino=self._new_ino(),
            uid=member.uid,
            gid=member.gid,
            size=member.size,
            mtime=member.mtime,
            target=member.linkname if kind == "symlink" else "",
            data=(data_file, member.offset) if kind == "file" and not member.sparse else None,
            major=member.major,
            minor=member.minor,
            sparse=member.sparse,
        )

    def _hardlink(self, member: Member, where: str) -> Node | None:
        target, _ = normalise(member.linkname)
        if target is None:
            self._problem(
                "hardlinks leading outside",
                member.name,
                f"{where}: a hardlink to {member.linkname!r}, outside the image; skipped",
            )
            return None
        found = self._walk(target, follow_last=False)
        if found.node is None or found.node.kind == "dir":
            self._problem(
                "hardlinks to nothing",
                member.name,
                f"{where}: a hardlink to {member.linkname!r}, which is not a file in the "
                "image; skipped",
            )
            return None
        return found.node  # one inode, two names: the same node object

    def _parent_folder(self, folder: str, name: str, where: str) -> str | None:
        """The real path of an entry's folder, made when missing, symlinks followed inside."""
        node = self.nodes.get(folder)
        if node is not None and node.kind == "dir":
            return folder  # the usual case: every key of nodes is a real path
        found = self._walk(folder, follow_last=True, make_folders=True)
        if found.node is None or found.node.kind != "dir":
            self._problem(
                "entries under a non-folder",
                name,
                f"{where}: its folder {folder} is not a folder in the image; entry skipped",
            )
            return None
        if found.path != folder:
            self._problem(
                "entries written through a symlink",
                name,
                f"{where}: written through a symlink; placed at {found.path} inside the image",
            )
        return found.path

    def _remove(self, path: str) -> None:
        node = self.nodes.pop(path, None)
        if node is None:
            return
        parent = posixpath.dirname(path)
        self.children.get(parent, {}).pop(posixpath.basename(path), None)
        if node.kind != "dir":
            return
        stack = [path]
        while stack:
            folder = stack.pop()
            for name in self.children.pop(folder, {}):
                child = _join(folder, name)
                gone = self.nodes.pop(child, None)
                if gone is not None and gone.kind == "dir":
                    stack.append(child)

    # -- reading --------------------------------------------------------------------------

    def lookup(self, path: str, *, follow_last: bool = True) -> Lookup:
        """Resolve ``path`` inside the image; raises ``OSError(ELOOP)`` on a symlink loop."""
        node = self.nodes.get(path)
        if node is not None and (node.kind != "symlink" or not follow_last):
            return Lookup(path, node)  # a real path: every key's parents are folders
        return self._walk(path, follow_last=follow_last)

    def _walk(self, path: str, *, follow_last: bool, make_folders: bool = False) -> Lookup:
        pending = [part for part in reversed(path.split("/")) if part not in ("", ".")]
        current = "/"
        links = 0
        escaped = False
        while pending:
            part = pending.pop()
            if part == "..":
                if current == "/":
                    escaped = True
                else:
                    current = posixpath.dirname(current)
                continue
            candidate = _join(current, part)
            node = self.nodes.get(candidate)
            if node is None:
                if make_folders:
                    node = Node("dir", 0o755, ino=self._new_ino())
                    self.nodes[candidate] = node
                    self.children[current][part] = None
                    self.children[candidate] = {}
                else:
                    rest = list(reversed(pending))
                    missing = "/".join([candidate, *rest]) if rest else candidate
                    return Lookup(posixpath.normpath(missing), None, escaped)
            if node.kind == "symlink" and (pending or follow_last):
                links += 1
                if links > MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
                target = node.target
                pending.extend(p for p in reversed(target.split("/")) if p not in ("", "."))
                if target.startswith("/"):
                    current = "/"
                continue
            if pending and node.kind != "dir":
                return Lookup(candidate + "/" + "/".join(reversed(pending)), None, escaped)
            current = candidate
        return Lookup(current, self.nodes.get(current), escaped)

    def listdir(self, folder: str) -> list[str]:
        """The names in a real folder path (see :meth:`lookup`), unsorted."""
        return list(self.children.get(folder, {}))

    @property
    def entry_count(self) -> int:
        return len(self.nodes)


def _join(folder: str, name: str) -> str:
    return "/" + name if folder == "/" else f"{folder}/{name}"
