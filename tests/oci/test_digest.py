"""Digest values and canonical JSON: pure logic, checked against hashlib and json."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envpack.oci.digest import Digest, InvalidDigest
from envpack.oci.model import Descriptor, Index, InvalidImage, Manifest, canonical_json

HEX = "a" * 64


def test_digest_round_trips_and_hashes_like_hashlib() -> None:
    digest = Digest.of_bytes(b"envpack")
    assert str(digest) == "sha256:" + hashlib.sha256(b"envpack").hexdigest()
    assert Digest.parse(str(digest)) == digest


@pytest.mark.parametrize(
    "text",
    ["", HEX, "sha256:" + HEX[:-1], "sha256:" + HEX.upper(), "sha512:" + HEX, "sha256:" + "g" * 64],
)
def test_malformed_digests_are_refused(text: str) -> None:
    with pytest.raises(InvalidDigest):
        Digest.parse(text)


def test_canonical_json_is_sorted_compact_utf8() -> None:
    value = {"b": [1, {"z": "é", "a": None}], "a": "x"}
    assert canonical_json(value) == '{"a":"x","b":[1,{"a":null,"z":"é"}]}'.encode()
    with pytest.raises(ValueError, match="not JSON compliant"):
        canonical_json({"n": float("nan")})


@settings(max_examples=60)
@given(
    st.dictionaries(
        st.text(max_size=8),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=8),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(st.text(max_size=8), inner, max_size=4)
            ),
            max_leaves=12,
        ),
        max_size=6,
    )
)
def test_canonical_json_is_independent_of_key_order(value: dict[str, object]) -> None:
    encoded = canonical_json(value)
    assert json.loads(encoded) == value
    assert canonical_json(dict(reversed(list(value.items())))) == encoded


def test_manifest_and_index_round_trip() -> None:
    config = Descriptor("application/vnd.oci.image.config.v1+json", Digest("sha256", HEX), 10)
    layer = Descriptor(
        "application/vnd.oci.image.layer.v1.tar+gzip", Digest("sha256", "b" * 64), 20, {"k": "v"}
    )
    manifest = Manifest(config, (layer,), {"org.opencontainers.image.created": "now"})
    assert Manifest.from_bytes(manifest.to_bytes(), "m") == manifest
    index = Index((Descriptor(manifest.media_type, Digest.of_bytes(manifest.to_bytes()), 3),))
    assert Index.from_bytes(index.to_bytes(), "i") == index


@pytest.mark.parametrize(
    "data",
    [
        b"[]",
        b"{",
        b'{"schemaVersion": 1}',
        b'{"schemaVersion": 2, "config": {}, "layers": []}',
        b'{"schemaVersion": 2, "layers": [], "config": {"mediaType": "x", "size": -1,'
        b' "digest": "sha256:' + HEX.encode() + b'"}}',
    ],
)
def test_malformed_manifests_are_one_line_errors(data: bytes) -> None:
    with pytest.raises(InvalidImage) as info:
        Manifest.from_bytes(data, "blob")
    assert str(info.value).startswith("blob")
    assert "\n" not in str(info.value)
