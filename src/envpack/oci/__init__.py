"""OCI image structures: digests, descriptors, reproducible layer tars, layouts, archives.

Shared by ``envpack build`` (writing images) and, later, image capture (reading them), so it
depends on nothing else in envpack but :mod:`envpack.errors`.
"""

from __future__ import annotations

from envpack.oci.digest import Digest, InvalidDigest
from envpack.oci.layer import DEFAULT_LEVEL, Layer, build_layer, build_layers
from envpack.oci.model import Descriptor, Index, InvalidImage, Manifest, Platform, canonical_json
from envpack.oci.tarlayer import InvalidEntry, TarEntry, ordered_entries, write_tar

__all__ = [
    "DEFAULT_LEVEL",
    "Descriptor",
    "Digest",
    "Index",
    "InvalidDigest",
    "InvalidEntry",
    "InvalidImage",
    "Layer",
    "Manifest",
    "Platform",
    "TarEntry",
    "build_layer",
    "build_layers",
    "canonical_json",
    "ordered_entries",
    "write_tar",
]
