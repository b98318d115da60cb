"""What an SBOM lists, read from a manifest: one neutral :class:`Item` per component.

Python distributions (``pkg:pypi/…``), system packages (``pkg:deb/…``, ``pkg:apk/…``,
``pkg:rpm/…`` with ``arch`` and ``distro`` qualifiers), the interpreters (``pkg:generic``
plus the CPE scanners match CPython's advisories by) and the shared libraries, each with
its sha256 and the package that owns it. Only names, versions, paths and hashes are read:
never an environment variable or a config value, so a secret cannot reach an SBOM (and
the manifest holds redacted values anyway).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from packageurl import PackageURL

from envpack.manifest import Manifest

__all__ = ["Item", "ItemKind", "inventory"]

ItemKind = Literal["python", "system", "interpreter", "library"]

# The purl type and the namespace of each package manager; the namespace is the
# distribution's os-release ID (debian, ubuntu, alpine, fedora …) when known.
_PURL_TYPES = {"dpkg": "deb", "apk": "apk", "rpm": "rpm"}
_DEFAULT_NAMESPACE = {"dpkg": "debian", "apk": "alpine", "rpm": "redhat"}
# CPE vendor:product of interpreter implementations (NVD's names).
_CPE = {"cpython": "python:python", "pypy": "pypy:pypy"}


@dataclass(frozen=True)
class Item:
    """One component of the SBOM, independent of its format."""

    kind: ItemKind
    ref: str
    """Unique within the document, stable across runs (a purl, or ``library:<path>``)."""
    name: str
    version: str
    purl: str = ""
    cpe: str = ""
    sha256: str = ""
    owner: str = ""
    """The ``ref`` of the item that owns this one (a library's package), or ``""``."""
    properties: tuple[tuple[str, str], ...] = field(default=())


def _distro(manifest: Manifest) -> tuple[str, str]:
    """(os-release ID, ``ID-VERSION_ID``) of the captured system, when known."""
    release: Mapping[str, Any] = manifest.section("os").get("release") or {}
    ident = str(release.get("id") or "").strip().lower()
    version = str(release.get("version_id") or "").strip()
    return ident, f"{ident}-{version}" if ident and version else ident


def _pypi(name: str, version: str) -> str:
    return PackageURL(type="pypi", name=name, version=version or None).to_string()


def _system_purl(component: Mapping[str, Any], ident: str, distro: str) -> str:
    manager = str(component.get("manager") or "")
    kind = _PURL_TYPES.get(manager)
    if kind is None:
        return ""
    version = str(component.get("version") or "")
    qualifiers: dict[str, str] = {}
    arch = str(component.get("architecture") or "")
    if arch:
        qualifiers["arch"] = arch
    if kind == "rpm" and ":" in version:
        # purl-spec: an rpm epoch is the ``epoch`` qualifier, not part of the version.
        epoch, _, version = version.partition(":")
        qualifiers["epoch"] = epoch
    if distro:
        qualifiers["distro"] = distro
    source = str(component.get("source") or "")
    if kind == "deb" and source and source != component.get("name"):
        qualifiers["upstream"] = source
    return PackageURL(
        type=kind,
        namespace=ident or _DEFAULT_NAMESPACE[manager],
        name=str(component.get("name") or ""),
        version=version or None,
        qualifiers=qualifiers,
    ).to_string()


def _interpreter(key: str, component: Mapping[str, Any]) -> Item | None:
    implementation = str(component.get("implementation") or "python").lower()
    version = str(component.get("version") or "")
    executable = str(component.get("executable") or key)
    name = {"cpython": "python", "pypy": "pypy"}.get(implementation, implementation)
    purl = PackageURL(
        type="generic",
        name=name,
        version=version or None,
        qualifiers={"implementation": implementation},
    ).to_string()
    vendor_product = _CPE.get(implementation)
    cpe = (
        f"cpe:2.3:a:{vendor_product}:{version}:*:*:*:*:*:*:*" if vendor_product and version else ""
    )
    properties = [("envpack:executable", executable)]
    if component.get("primary"):
        properties.append(("envpack:primary", "true"))
    if component.get("virtualenv"):
        properties.append(("envpack:virtualenv", str(component.get("prefix") or "")))
    # Two interpreters of one version (a venv and its base) are still two components.
    ref = f"{purl}#{hashlib.sha256(executable.encode('utf-8', 'surrogateescape')).hexdigest()[:12]}"
    return Item("interpreter", ref, name, version, purl, cpe, "", "", tuple(properties))


def inventory(manifest: Manifest) -> list[Item]:
    """Every component the manifest records, in a stable order (by kind, then ref)."""
    ident, distro = _distro(manifest)
    items: list[Item] = []
    owners: dict[tuple[str, str, str], str] = {}

    for key, component in manifest.section("interpreters").items():
        found = _interpreter(str(key), component)
        if found is not None:
            items.append(found)

    for key, component in manifest.section("python_packages").items():
        name = str(component.get("name") or key)
        version = str(component.get("version") or "")
        purl = _pypi(name, version)
        interpreter = str(component.get("interpreter") or "")
        ref = purl if "@" not in str(key) else f"{purl}#{_short(interpreter)}"
        properties = [("envpack:location", str(component.get("location") or ""))]
        if interpreter:
            properties.append(("envpack:interpreter", interpreter))
        items.append(Item("python", ref, name, version, purl, properties=tuple(properties)))
        normalized = PackageURL(type="pypi", name=name).name
        owners[("python", normalized, version)] = ref

    for key, component in manifest.section("system_packages").items():
        name = str(component.get("name") or key)
        version = str(component.get("version") or "")
        purl = _system_purl(component, ident, distro)
        ref = purl or f"system:{key}"
        manager = str(component.get("manager") or "")
        properties = [("envpack:manager", manager)] if manager else []
        items.append(Item("system", ref, name, version, purl, properties=tuple(properties)))
        owners.setdefault((manager, name, version), ref)

    for key, component in manifest.section("libraries").items():
        path = str(component.get("real_path") or component.get("path") or key)
        sha = component.get("sha256")
        owner = component.get("owner") or {}
        owner_ref = ""
        if isinstance(owner, Mapping):
            kind = str(owner.get("kind") or "")
            owner_name = str(owner.get("name") or "")
            if kind == "python":
                owner_name = PackageURL(type="pypi", name=owner_name).name if owner_name else ""
            owner_ref = owners.get((kind, owner_name, str(owner.get("version") or "")), "")
        properties = [("envpack:path", str(component.get("path") or path))]
        if path != component.get("path"):
            properties.append(("envpack:real_path", path))
        if isinstance(owner, Mapping) and owner.get("name"):
            properties.append(("envpack:owner", f"{owner.get('kind')}:{owner.get('name')}"))
        soname = str(component.get("soname") or key)
        items.append(
            Item(
                "library",
                f"library:{path}",
                soname,
                "",
                sha256=sha if isinstance(sha, str) else "",
                owner=owner_ref,
                properties=tuple(properties),
            )
        )

    order = {"interpreter": 0, "python": 1, "system": 2, "library": 3}
    items.sort(key=lambda item: (order[item.kind], item.ref))
    return _unique(items)


def _unique(items: list[Item]) -> list[Item]:
    """Refs made unique (a database listing one package twice gives two equal purls)."""
    seen: dict[str, int] = {}
    out: list[Item] = []
    for item in items:
        count = seen.get(item.ref, 0) + 1
        seen[item.ref] = count
        out.append(item if count == 1 else replace(item, ref=f"{item.ref}#{count}"))
    return out


def _short(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:12]
