"""Version ordering: PEP 440 sizes, and Debian/RPM orderings checked against dpkg and rpm."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envpack.diff.versions import (
    compare_apk,
    compare_debian,
    compare_rpm,
    python_delta,
    system_delta,
)

DPKG = shutil.which("dpkg")
RPM = shutil.which("rpm")


def dpkg_compare(a: str, b: str) -> int:
    assert DPKG is not None
    for op, result in (("lt", -1), ("eq", 0), ("gt", 1)):
        done = subprocess.run(
            [DPKG, "--compare-versions", a, op, b], capture_output=True, check=False
        )
        if done.returncode == 0:
            return result
    raise AssertionError(f"dpkg gave no answer for {a!r} {b!r}")


def rpm_compare_many(pairs: list[tuple[str, str]]) -> list[int]:
    """One rpm process for many pairs: rpm.vercmp inside rpm's embedded Lua."""
    assert RPM is not None
    calls = " ".join(f'print(rpm.vercmp("{a}", "{b}") .. " ")' for a, b in pairs)
    done = subprocess.run(
        [RPM, "--eval", "%{lua: " + calls + "}"], capture_output=True, text=True, check=True
    )
    return [int(x) for x in done.stdout.split()]


# --- Python ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after", "order", "level"),
    [
        ("1.2.3", "2.0.0", 1, "major"),
        ("2.31.0", "2.27.1", -1, "minor"),
        ("1.2.3", "1.2.4", 1, "patch"),
        ("1.2", "1.2.0", 0, "other"),
        ("1.0rc1", "1.0", 1, "pre"),
        ("1.0", "1.0.post1", 1, "post"),
        ("1.0.dev1", "1.0.dev2", 1, "dev"),
        ("1.0+local.1", "1.0+local.2", 1, "local"),
        ("1!1.0", "2.0", -1, "epoch"),
        ("1.2.3.4", "1.2.3.5", 1, "patch"),
        ("2004d", "2005a", 0, "legacy"),
        ("1.0-foo-bar", "1.0", 0, "legacy"),
    ],
)
def test_python_delta(before: str, after: str, order: int, level: str) -> None:
    found = python_delta(before, after)
    assert (found.order, found.level) == (order, level)
    assert found.legacy is (level == "legacy")


def test_python_delta_is_antisymmetric() -> None:
    forward, backward = python_delta("3.11.7", "2.7.18"), python_delta("2.7.18", "3.11.7")
    assert (forward.order, backward.order) == (-1, 1)
    assert forward.level == backward.level == "major"


# --- Debian, against dpkg ---------------------------------------------------------------

TRICKY_DEBIAN = [
    ("1.0~rc1", "1.0"),
    ("1.0~rc1-1", "1.0-1"),
    ("1.0~~", "1.0~"),
    ("1.0~", "1.0"),
    ("1:1.0", "2.0"),
    ("0:1.0", "1.0"),
    ("1.0-1", "1.0-1~bpo1"),
    ("1.0", "1.0-0"),
    ("2.30-1", "2.30-1+b1"),
    ("1.0a", "1.0+"),
    ("1.0.", "1.0"),
    ("1.01", "1.1"),
    ("1.0-1.2", "1.0-1.10"),
    ("2.36-9+deb12u4", "2.36-9+deb12u3"),
    ("3.0.11-1~deb12u2", "3.0.11-1"),
    ("1.2.3-a-b", "1.2.3-a"),
    ("10", "9"),
    ("1.0+dfsg", "1.0"),
    ("1.0a", "1.0A"),
    ("7.88.1-10+deb12u5", "7.88.1-10+deb12u12"),
    ("1:2.0~beta", "1:2.0"),
    ("000001", "1"),
]


@pytest.mark.skipif(DPKG is None, reason="dpkg is not installed (apt-get install dpkg)")
@pytest.mark.parametrize(("a", "b"), TRICKY_DEBIAN)
def test_debian_tricky_pairs_match_dpkg(a: str, b: str) -> None:
    expected = dpkg_compare(a, b)
    assert compare_debian(a, b) == expected
    assert compare_debian(b, a) == -expected


_deb_upstream = st.from_regex(r"[0-9][0-9A-Za-z.+~]{0,8}", fullmatch=True)
_deb_revision = st.from_regex(r"[0-9A-Za-z.+~]{1,6}", fullmatch=True)


@st.composite
def debian_versions(draw: st.DrawFn) -> str:
    epoch = draw(st.sampled_from(["", "", "", "1:", "2:"]))
    upstream = draw(_deb_upstream)
    revision = draw(st.one_of(st.just(""), _deb_revision.map(lambda r: "-" + r)))
    return epoch + upstream + revision


@pytest.mark.slow
@pytest.mark.skipif(DPKG is None, reason="dpkg is not installed (apt-get install dpkg)")
@settings(max_examples=150, deadline=None)
@given(debian_versions(), debian_versions())
def test_debian_ordering_matches_dpkg(a: str, b: str) -> None:
    assert compare_debian(a, b) == dpkg_compare(a, b)


# --- RPM, against rpm.vercmp -------------------------------------------------------------

TRICKY_RPM = [
    ("1.0~rc1", "1.0"),
    ("1:1.0-1", "2.0-1"),
    ("1.0^1", "1.0"),
    ("1.0^1", "1.0.1"),
    ("1.0^git1", "1.0^git2"),
    ("1.0~rc1^git1", "1.0~rc1"),
    ("1.0", "1.0a"),
    ("1.0.a", "1.0.1"),
    ("1.0-1", "1.0"),
    ("2.0-1", "2.0-2"),
    ("1..0", "1.0"),
    ("a", "1"),
    ("1.0~~", "1.0~"),
    ("1.010", "1.9"),
    ("1.0-1.el9", "1.0-1.el8"),
    ("3.0.7-27.el9", "3.0.7-24.el9_1"),
    ("1_0", "1.0"),
    ("0001", "1"),
    ("abc", "abd"),
    ("1.0a1", "1.0.1"),
]


@pytest.mark.skipif(RPM is None, reason="rpm is not installed (apt-get install -y rpm)")
def test_rpm_tricky_pairs_match_rpm() -> None:
    expected = rpm_compare_many(TRICKY_RPM)
    mine = [compare_rpm(a, b) for a, b in TRICKY_RPM]
    assert list(zip(TRICKY_RPM, mine)) == list(zip(TRICKY_RPM, expected))


_rpm_part = st.from_regex(r"[0-9A-Za-z.~^_+]{1,8}", fullmatch=True)


@st.composite
def rpm_versions(draw: st.DrawFn) -> str:
    epoch = draw(st.sampled_from(["", "", "1:", "2:"]))
    version = draw(_rpm_part)
    release = draw(st.one_of(st.just(""), _rpm_part.map(lambda r: "-" + r)))
    return epoch + version + release


@pytest.mark.skipif(RPM is None, reason="rpm is not installed (apt-get install -y rpm)")
@settings(max_examples=20, deadline=None)
@given(st.lists(st.tuples(rpm_versions(), rpm_versions()), min_size=1, max_size=25))
def test_rpm_ordering_matches_rpm(pairs: list[tuple[str, str]]) -> None:
    expected = rpm_compare_many(pairs)
    assert [compare_rpm(a, b) for a, b in pairs] == expected


# --- sizes of system package changes ------------------------------------------------------


@pytest.mark.parametrize(
    ("manager", "before", "after", "order", "level"),
    [
        ("dpkg", "2.36-9+deb12u4", "2.36-9+deb12u3", -1, "patch"),
        ("dpkg", "1.1.1n-0+deb11u5", "3.0.11-1~deb12u2", 1, "major"),
        ("dpkg", "7.74.0-1.3", "7.88.1-10", 1, "minor"),
        ("dpkg", "1:1.0", "2.0", -1, "epoch"),
        ("rpm", "3.0.7-27.el9", "3.0.7-24.el9_1", -1, "patch"),
        ("rpm", "1.1.1k-9.el8", "3.0.7-27.el9", 1, "major"),
        # rpm reads epochs as numbers: "00:" and no epoch are epoch 0, not an epoch change.
        ("rpm", "00:1.0-1", "0:1.0-1", 0, "patch"),
        ("rpm", "1.0-1", "0:1.0-1", 0, "patch"),
        ("rpm", "1:1.0-1", "0:1.0-1", -1, "epoch"),
        ("apk", "3.1.4-r5", "3.1.4-r6", 1, "patch"),
        ("apk", "3.1.4-r5", "3.2.0-r0", 1, "minor"),
        (None, "1.10", "1.9", -1, "minor"),
    ],
)
def test_system_delta(manager: str | None, before: str, after: str, order: int, level: str) -> None:
    found = system_delta(manager, before, after)
    assert (found.order, found.level) == (order, level)


def test_apk_release_is_numeric() -> None:
    assert compare_apk("1.0-r10", "1.0-r9") == 1
    assert compare_apk("1.0-r9", "1.0-r9") == 0
