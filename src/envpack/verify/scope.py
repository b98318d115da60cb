"""What ``envpack verify`` compares: the part of a source manifest a build put in its image.

Pure: two manifests in (the source's, and the image's own capture), two restricted
manifests and the notes that say what was left aside out. Only the sections a build
packs are kept — ``interpreters``, ``python_packages``, ``libraries``, ``config_files`` —
and inside them only what the build packs or can reproduce:

* the primary interpreter alone (``envpack build`` packs that one), without the two
  markers that describe the running kernel (``platform_release``, ``platform_version``):
  the kernel is never part of an image;
* that interpreter's Python packages;
* the libraries the Python side and the image's binaries load (the source's capture also
  lists those of every program on its PATH), without the owning package: an image's
  package database keeps no file lists, so no owner can be read back from it;
* the config files, except the base files the build writes itself (``/etc/passwd`` …)
  and those it left out on purpose: secret-looking ones (unless the image holds them,
  i.e. ``--include-secrets``) and whatever the build report lists as excluded; and
  without ``owner_name`` (a user-database lookup only a live capture makes).

What a build left out of this image is said in a note, so a clean verify never hides a
difference silently; the fields never compared (kernel markers, owners, owner names) are
listed here and in the README.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace

from envpack.manifest import CAPTURED, Component, Manifest, Section
from envpack.pack.basefiles import GENERATED
from envpack.redact import holds_secrets

__all__ = [
    "KERNEL_MARKERS",
    "SECTIONS",
    "Packing",
    "Scoped",
    "restrict",
]

SECTIONS: tuple[str, ...] = ("interpreters", "python_packages", "libraries", "config_files")
"""The sections verify compares."""

KERNEL_MARKERS = ("platform_release", "platform_version")
"""Interpreter markers read from the running kernel (``uname``), not from the image."""


@dataclass(frozen=True)
class Packing:
    """What the build is known to have left out on purpose."""

    excluded: frozenset[str] = frozenset()
    """Image paths the build report lists as excluded (``--exclude`` globs, the base)."""
    exclude_globs: tuple[str, ...] = ()
    """``--exclude`` globs, when known: a config file matching one was left out."""


@dataclass
class Scoped:
    """The two manifests restricted to what verify compares, and what was left aside."""

    source: Manifest
    image: Manifest
    notes: list[str] = field(default_factory=list)


def restrict(source: Manifest, image: Manifest, packing: Packing | None = None) -> Scoped:
    """``source`` and ``image`` cut down to the build's scope (see the module text)."""
    packing = packing or Packing()
    notes: list[str] = []
    src: dict[str, Section] = {}
    img: dict[str, Section] = {}
    primary_src, primary_img = _primary(source), _primary(image)
    src["interpreters"], img["interpreters"] = _interpreters(
        source, image, primary_src, primary_img, notes
    )
    # Keyed by the executable's path on both sides (envpack keeps absolute paths); the
    # image's own key is absent when its interpreter did not run.
    src["python_packages"] = _packages(source, primary_src, "the source", notes)
    img["python_packages"] = _packages(image, primary_src or primary_img, "the image", notes)
    roots = _library_roots(source, image, primary_src)
    src["libraries"], img["libraries"] = _libraries(source, image, roots, notes)
    src["config_files"], img["config_files"] = _configs(source, image, packing, notes)
    left_out = set(source.section("config_files")) - set(src["config_files"])
    for name in SECTIONS:
        for side, manifest in (("the source", source), ("the image", image)):
            state = manifest.coverage_of(name)
            if state != CAPTURED:
                # Nothing to hold the other side to: say so, compare neither.
                src.pop(name, None)
                img.pop(name, None)
                notes.append(f"{name}: {state.replace('_', ' ')} in {side}; not verified")
                break
    for issue in image.issues:
        if issue.probe == "config_files" and issue.path in left_out:
            continue  # not in the image on purpose: already said
        if issue.probe in SECTIONS:
            where = f" {issue.path}" if issue.path else ""
            notes.append(f"image capture: {issue.probe}{where}: {issue.reason}")
    # Every section outside the scope is empty on both sides, and so equal: the restricted
    # manifests claim full coverage (the sections a side skipped were dropped just above).
    return Scoped(
        source=Manifest(
            meta=replace(source.meta, coverage={}),
            sections=src,
            schema_version=source.schema_version,
        ),
        image=Manifest(
            meta=replace(image.meta, coverage={}),
            sections=img,
            schema_version=image.schema_version,
        ),
        notes=notes,
    )


# -- interpreters ---------------------------------------------------------------------------


def _primary(manifest: Manifest) -> str | None:
    section = manifest.section("interpreters")
    for key in sorted(section):
        if section[key].get("primary") is True:
            return key
    return None


def _interpreter_view(component: Component) -> Component:
    view = dict(component)
    markers = view.get("markers")
    if isinstance(markers, dict):
        view["markers"] = {k: v for k, v in markers.items() if k not in KERNEL_MARKERS}
    return view


def _interpreters(
    source: Manifest,
    image: Manifest,
    primary_src: str | None,
    primary_img: str | None,
    notes: list[str],
) -> tuple[Section, Section]:
    sa, sb = source.section("interpreters"), image.section("interpreters")
    others = sorted(k for k in sa if k != primary_src)
    if others:
        notes.append(
            f"interpreters: {len(others)} besides the primary one not compared "
            f"(a build packs the primary interpreter only): {', '.join(others)}"
        )
    a = {primary_src: _interpreter_view(sa[primary_src])} if primary_src is not None else {}
    b = {primary_img: _interpreter_view(sb[primary_img])} if primary_img is not None else {}
    ran_a = a.get(primary_src or "", {}).get("source")
    ran_b = b.get(primary_img or "", {}).get("source")
    if a and b and ran_a != ran_b:
        # One side ran the interpreter, the other read its files: how a fact was learned
        # is not a difference of the interpreter.
        for view in (*a.values(), *b.values()):
            view.pop("source", None)
        notes.append(
            f"interpreters: the source's was described by {ran_a or 'nothing'}, "
            f"the image's by {ran_b or 'nothing'}"
        )
    return a, b


# -- python packages ------------------------------------------------------------------------


def _packages(manifest: Manifest, primary: str | None, side: str, notes: list[str]) -> Section:
    kept: Section = {}
    dropped = 0
    for key, component in manifest.section("python_packages").items():
        owner = component.get("interpreter")
        if owner is None or owner == primary:
            kept[key] = component
        else:
            dropped += 1
    if dropped:
        notes.append(f"python_packages: {dropped} of other interpreters in {side} not compared")
    return kept


# -- libraries ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Roots:
    files: frozenset[str]
    """ELF files whose libraries the image must hold (interpreter, image binaries)."""
    folders: tuple[str, ...]
    """Folders whose ELF files are roots (the interpreter's prefixes, site-packages)."""

    def holds(self, path: str) -> bool:
        return path in self.files or any(
            path.startswith(folder.rstrip("/") + "/") for folder in self.folders
        )


def _library_roots(source: Manifest, image: Manifest, primary: str | None) -> _Roots:
    files: set[str] = set()
    folders: list[str] = []
    if primary is not None:
        interp = source.section("interpreters")[primary]
        for name in ("executable", "real_executable"):
            value = interp.get(name)
            if isinstance(value, str):
                files.add(value)
        for name in ("prefix", "base_prefix"):
            value = interp.get(name)
            if isinstance(value, str) and value not in ("", "/", "/usr"):
                folders.append(value)
        listed = (*(interp.get("site_packages") or ()), *(interp.get("sys_path") or ()))
        folders.extend(e for e in listed if isinstance(e, str) and e not in ("", "/"))
    # The image's own binaries (--include, the entrypoint's program, shebangs): packed,
    # so their libraries are too.
    for component in image.section("binaries").values():
        for name in ("path", "real_path"):
            value = component.get(name)
            if isinstance(value, str):
                files.add(value)
    return _Roots(frozenset(files), tuple(dict.fromkeys(folders)))


def _soname(key: str, component: Component) -> str:
    name = component.get("soname")
    return name if isinstance(name, str) else key.split("@", 1)[0]


def _reachable(section: Section, roots: _Roots) -> set[str]:
    """Keys of ``section`` loaded, directly or not, by something under ``roots``.

    ``needed_by`` names the requesters (only the first 20 are kept), so the walk also
    goes forward through each kept library's ``DT_NEEDED`` names: a library with many
    requesters on the source host is still found from a kept one that needs it.
    """
    by_name: dict[str, list[str]] = {}
    for key, component in section.items():
        by_name.setdefault(_soname(key, component), []).append(key)
    kept: set[str] = set()
    kept_paths: set[str] = set()
    pending: list[str] = []

    def keep(key: str) -> None:
        if key in kept:
            return
        kept.add(key)
        pending.append(key)
        for name in ("path", "real_path"):
            value = section[key].get(name)
            if isinstance(value, str):
                kept_paths.add(value)

    for key, component in section.items():
        if any(isinstance(p, str) and roots.holds(p) for p in component.get("needed_by") or ()):
            keep(key)
    changed = True
    while changed:
        changed = False
        while pending:
            key = pending.pop()
            elf = section[key].get("elf") or {}
            requester = {section[key].get("path"), section[key].get("real_path")}
            for needed in elf.get("needed") or () if isinstance(elf, dict) else ():
                candidates = by_name.get(needed, [])
                chosen = [
                    c for c in candidates if requester & set(section[c].get("needed_by") or ())
                ] or [c for c in candidates if c == needed]
                for candidate in chosen:
                    keep(candidate)
        for key, component in section.items():
            if key not in kept and kept_paths & set(component.get("needed_by") or ()):
                keep(key)
                changed = True
    return kept


def _library_view(component: Component) -> Component:
    return {
        k: v for k, v in component.items() if k not in ("owner", "needed_by", "needed_by_count")
    }


def _rekey(section: Section, keys: Iterable[str]) -> Section:
    """Keyed by soname, or ``soname@real path`` where one soname names several files."""
    chosen = sorted(keys)
    count: dict[str, int] = {}
    for key in chosen:
        name = _soname(key, section[key])
        count[name] = count.get(name, 0) + 1
    out: Section = {}
    for key in chosen:
        component = section[key]
        name = _soname(key, component)
        if count[name] > 1:
            name = f"{name}@{component.get('real_path') or component.get('path') or key}"
        out[name] = _library_view(component)
    return out


def _libraries(
    source: Manifest, image: Manifest, roots: _Roots, notes: list[str]
) -> tuple[Section, Section]:
    sa, sb = source.section("libraries"), image.section("libraries")
    kept = _reachable(sa, roots)
    # A library the image holds at the very same place is the source's copy of it, even
    # when the requester that pulled it in fell out of a long ``needed_by`` list.
    in_image = {(_soname(k, c), c.get("real_path")) for k, c in sb.items()}
    kept.update(k for k, c in sa.items() if (_soname(k, c), c.get("real_path")) in in_image)
    left = len(sa) - len(kept)
    if left:
        notes.append(
            f"libraries: {left} of the source's not compared: no packed program or Python "
            "module loads them"
        )
    return _rekey(sa, kept), _rekey(sb, sb.keys())


# -- config files ---------------------------------------------------------------------------


def _config_view(component: Component) -> Component:
    return {k: v for k, v in component.items() if k != "owner_name"}


def _matches(path: str, globs: Collection[str]) -> bool:
    return any(fnmatch.fnmatchcase(path, g) for g in globs)


def _configs(
    source: Manifest, image: Manifest, packing: Packing, notes: list[str]
) -> tuple[Section, Section]:
    sa, sb = source.section("config_files"), image.section("config_files")
    a: Section = {}
    generated: list[str] = []
    secret: list[str] = []
    excluded: list[str] = []
    for path, component in sa.items():
        if path in GENERATED:
            generated.append(path)
        elif path in packing.excluded or _matches(path, packing.exclude_globs):
            excluded.append(path)
        elif path not in sb and holds_secrets(component):
            secret.append(path)
        else:
            a[path] = _config_view(component)
    b = {
        path: _config_view(c)
        for path, c in sb.items()
        if path not in GENERATED and path not in excluded
    }
    if generated:
        notes.append(
            "config_files: written by the build's base, not copied: " + ", ".join(sorted(generated))
        )
    if secret:
        notes.append(
            "config_files: left out by the build (secret-looking keys; --include-secrets "
            "packs them): " + ", ".join(sorted(secret))
        )
    if excluded:
        notes.append("config_files: excluded by the build: " + ", ".join(sorted(excluded)))
    return a, b
