"""OCI image structures: digests, descriptors, reproducible layer tars, layouts, archives.

Shared by ``envpack build`` (writing images) and, later, image capture (reading them), so it
depends on nothing else in envpack but :mod:`envpack.errors`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from envpack._lazy import lazy_exports

if TYPE_CHECKING:
    from envpack.oci.archive import write_image_archive
    from envpack.oci.daemon import load_into_docker
    from envpack.oci.digest import Digest, InvalidDigest
    from envpack.oci.image import Image, ImageSpec, assemble
    from envpack.oci.layer import DEFAULT_LEVEL, Layer, build_layer, build_layers
    from envpack.oci.layout import LayoutImage, OciLayout, read_oci_layout, write_oci_layout
    from envpack.oci.model import (
        Descriptor,
        Index,
        InvalidImage,
        Manifest,
        Platform,
        canonical_json,
    )
    from envpack.oci.outputs import remove_stale_temporaries
    from envpack.oci.reference import InvalidReference, Reference
    from envpack.oci.tarlayer import InvalidEntry, TarEntry, ordered_entries, write_tar

__all__ = [
    "DEFAULT_LEVEL",
    "Descriptor",
    "Digest",
    "Image",
    "ImageSpec",
    "Index",
    "InvalidDigest",
    "InvalidEntry",
    "InvalidImage",
    "InvalidReference",
    "Layer",
    "LayoutImage",
    "Manifest",
    "OciLayout",
    "Platform",
    "Reference",
    "TarEntry",
    "assemble",
    "build_layer",
    "build_layers",
    "canonical_json",
    "load_into_docker",
    "ordered_entries",
    "read_oci_layout",
    "remove_stale_temporaries",
    "write_image_archive",
    "write_oci_layout",
    "write_tar",
]

__getattr__ = lazy_exports(
    globals(),
    {
        "write_image_archive": "archive",
        "load_into_docker": "daemon",
        "Digest": "digest",
        "InvalidDigest": "digest",
        "Image": "image",
        "ImageSpec": "image",
        "assemble": "image",
        "DEFAULT_LEVEL": "layer",
        "Layer": "layer",
        "build_layer": "layer",
        "build_layers": "layer",
        "LayoutImage": "layout",
        "OciLayout": "layout",
        "read_oci_layout": "layout",
        "write_oci_layout": "layout",
        "Descriptor": "model",
        "Index": "model",
        "InvalidImage": "model",
        "Manifest": "model",
        "Platform": "model",
        "canonical_json": "model",
        "remove_stale_temporaries": "outputs",
        "InvalidReference": "reference",
        "Reference": "reference",
        "InvalidEntry": "tarlayer",
        "TarEntry": "tarlayer",
        "ordered_entries": "tarlayer",
        "write_tar": "tarlayer",
    },
)
