"""Image names normalised as Docker does; bad ones refused with one line."""

from __future__ import annotations

import pytest

from envpack.oci.reference import InvalidReference, Reference


@pytest.mark.parametrize(
    ("text", "full", "familiar"),
    [
        ("app", "docker.io/library/app:latest", "app:latest"),
        ("app:1.0", "docker.io/library/app:1.0", "app:1.0"),
        ("team/app:v2", "docker.io/team/app:v2", "team/app:v2"),
        ("localhost:5000/app:1", "localhost:5000/app:1", "localhost:5000/app:1"),
        ("registry.example/a/b", "registry.example/a/b:latest", "registry.example/a/b:latest"),
        ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
    ],
)
def test_names_are_normalised(text: str, full: str, familiar: str) -> None:
    reference = Reference.parse(text)
    assert reference.full == full
    assert reference.familiar == familiar


@pytest.mark.parametrize(
    "text", ["App", "app@sha256:" + "a" * 64, "app:", "app:-x", "a//b", "-app", "app:" + "t" * 129]
)
def test_bad_names_are_refused(text: str) -> None:
    with pytest.raises(InvalidReference) as info:
        Reference.parse(text)
    assert "\n" not in str(info.value)
