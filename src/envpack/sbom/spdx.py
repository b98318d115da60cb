"""SPDX 2.3 JSON of an inventory, written directly as the JSON schema defines it.

Not spdx-tools: its document model and writer pull in rdflib, beartype, ply and five more
libraries, and validate while writing in ways that cost more than the whole capture, for
a document this flat (packages, checksums, purls, relationships). The tests validate the
output against the SPDX 2.3 JSON schema and with spdx-tools' own validator instead.

Every package is ``filesAnalyzed: false`` with ``NOASSERTION`` for what a capture cannot
know (licenses, download location). Shared libraries are packages too (purpose
``LIBRARY``) with their SHA256: an SPDX *file* must carry a SHA1, which a capture does not
compute. The owning package ``CONTAINS`` each library; the environment ``CONTAINS`` the
rest, and the document ``DESCRIBES`` the environment.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence
from typing import Any

import orjson

from envpack import __version__
from envpack.sbom.inventory import Item

__all__ = ["render_spdx"]

_PURPOSE = {
    "interpreter": "APPLICATION",
    "python": "LIBRARY",
    "system": "INSTALL",
    "library": "LIBRARY",
}
_NOASSERTION = "NOASSERTION"
_ROOT = "SPDXRef-environment"


def _spdx_id(item: Item) -> str:
    # Letters, digits, '.' and '-' only; the hash keeps two similar refs apart.
    readable = re.sub(r"[^A-Za-z0-9.-]+", "-", f"{item.kind}-{item.name}")[:60].strip("-")
    digest = hashlib.sha256(item.ref.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return f"SPDXRef-{readable}-{digest}"


def _package(item: Item, spdx_id: str) -> dict[str, Any]:
    package: dict[str, Any] = {
        "SPDXID": spdx_id,
        "name": item.name,
        "downloadLocation": _NOASSERTION,
        "filesAnalyzed": False,
        "licenseConcluded": _NOASSERTION,
        "licenseDeclared": _NOASSERTION,
        "copyrightText": _NOASSERTION,
        "primaryPackagePurpose": _PURPOSE[item.kind],
    }
    if item.version:
        package["versionInfo"] = item.version
    if item.sha256:
        package["checksums"] = [{"algorithm": "SHA256", "checksumValue": item.sha256}]
    refs = []
    if item.purl:
        refs.append(
            {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
             "referenceLocator": item.purl}
        )  # fmt: skip
    if item.cpe:
        refs.append(
            {"referenceCategory": "SECURITY", "referenceType": "cpe23Type",
             "referenceLocator": item.cpe}
        )  # fmt: skip
    if refs:
        package["externalRefs"] = refs
    if item.properties:
        package["comment"] = "; ".join(f"{k}={v}" for k, v in item.properties)
    return package


def render_spdx(items: Sequence[Item], *, name: str, serial: uuid.UUID, created: str) -> bytes:
    """The SPDX document as indented JSON bytes (UTF-8, ending in a newline)."""
    ids = {item.ref: _spdx_id(item) for item in items}
    root = {
        "SPDXID": _ROOT,
        "name": name,
        "downloadLocation": _NOASSERTION,
        "filesAnalyzed": False,
        "licenseConcluded": _NOASSERTION,
        "licenseDeclared": _NOASSERTION,
        "copyrightText": _NOASSERTION,
        "primaryPackagePurpose": "CONTAINER",
    }
    relationships = [
        {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
         "relatedSpdxElement": _ROOT}
    ]  # fmt: skip
    for item in items:
        parent = ids.get(item.owner, _ROOT) if item.owner else _ROOT
        relationships.append(
            {"spdxElementId": parent, "relationshipType": "CONTAINS",
             "relatedSpdxElement": ids[item.ref]}
        )  # fmt: skip
    document = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": name,
        "documentNamespace": f"https://envpack.invalid/spdx/{serial}",
        "creationInfo": {"created": created, "creators": [f"Tool: envpack-{__version__}"]},
        "packages": [root, *(_package(item, ids[item.ref]) for item in items)],
        "relationships": relationships,
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
