"""CycloneDX 1.6 JSON of an inventory, written by cyclonedx-python-lib (OWASP's own).

Libraries are nested in the component of the package that owns them (CycloneDX
assemblies: "included in"), the others hang off the environment's root component, which
depends on every top-level component. Every ``bom-ref`` is fixed (a purl or a path), the
serial number and timestamp come from the caller, so the same manifest gives the same
bytes.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence

from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.dependency import Dependency
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

from envpack import __version__
from envpack.sbom.inventory import Item

__all__ = ["render_cyclonedx"]

_TYPES = {
    "interpreter": ComponentType.APPLICATION,
    "python": ComponentType.LIBRARY,
    "system": ComponentType.LIBRARY,
    "library": ComponentType.FILE,
}


def _component(item: Item) -> Component:
    return Component(
        name=item.name,
        version=item.version or None,
        type=_TYPES[item.kind],
        bom_ref=item.ref,
        purl=PackageURL.from_string(item.purl) if item.purl else None,
        cpe=item.cpe or None,
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=item.sha256)] if item.sha256 else None,
        properties=[Property(name=k, value=v) for k, v in item.properties] or None,
    )


def render_cyclonedx(
    items: Sequence[Item],
    *,
    name: str,
    serial: uuid.UUID,
    timestamp: datetime.datetime,
) -> bytes:
    """The BOM as indented JSON bytes (UTF-8, ending in a newline)."""
    root = Component(
        name=name,
        type=ComponentType.CONTAINER,
        bom_ref="envpack:environment",
        properties=[Property(name="envpack:version", value=__version__)],
    )
    tool = Component(
        name="envpack", version=__version__, type=ComponentType.APPLICATION, bom_ref="envpack"
    )
    metadata = BomMetaData(timestamp=timestamp, component=root)
    metadata.tools.components.add(tool)
    bom = Bom(serial_number=serial, metadata=metadata)
    made = {item.ref: _component(item) for item in items}
    top: list[Component] = []
    for item in items:
        parent = made.get(item.owner) if item.owner else None
        if parent is not None and parent is not made[item.ref]:
            parent.components.add(made[item.ref])
        else:
            top.append(made[item.ref])
    for component in top:
        bom.components.add(component)
    # The graph written directly: Bom.register_dependency searches the whole list for
    # each call (quadratic: seconds for a thousand packages).
    bom.dependencies.add(
        Dependency(ref=root.bom_ref, dependencies=[Dependency(ref=c.bom_ref) for c in top])
    )
    bom.dependencies.update(Dependency(ref=c.bom_ref) for c in made.values())
    text = JsonV1Dot6(bom).output_as_string(indent=2)
    return text.encode("utf-8") + b"\n"
