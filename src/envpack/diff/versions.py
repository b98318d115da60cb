"""Version ordering and the size of a version change, for each packaging world.

* Python (PEP 440) through ``packaging.version``: which part changed (epoch, major, minor,
  patch, pre, post, dev, local) and in which direction. A version that is not PEP 440
  (``"2004d"``, ``"1.0-foo"``) is *legacy*: equality only, flagged, never guessed.
* Debian (``dpkg``): ``[epoch:]upstream[-revision]``, ``~`` sorts before everything, even
  the end of the string. Implemented here from Debian Policy §5.6.12 and checked against
  ``dpkg --compare-versions`` by the tests (no python-debian dependency needed).
* RPM: ``[epoch:]version[-release]`` compared segment by segment like ``rpmvercmp``,
  with ``~`` (pre-release, sorts first) and ``^`` (post-release snapshot, sorts after
  the base version but before the next one). Checked against ``rpm.vercmp``.
* apk and unknown managers: a natural ordering (digit runs as numbers), good enough to
  tell an upgrade from a downgrade, never used for equality (that is ``==`` on strings).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

__all__ = [
    "VersionDelta",
    "compare_apk",
    "compare_debian",
    "compare_natural",
    "compare_rpm",
    "compare_rpmvercmp",
    "delta",
    "python_delta",
    "system_delta",
]

LEVELS = ("epoch", "major", "minor", "patch", "pre", "dev", "post", "local", "other", "legacy")
"""Names of :attr:`VersionDelta.level`, from the largest change to the smallest/unknown."""


@dataclass(frozen=True)
class VersionDelta:
    """How two versions of the same thing differ."""

    order: int
    """-1 when ``after`` is older (a downgrade), 1 when newer (an upgrade), 0 equal/unknown."""
    level: str
    """The most significant part that differs: one of :data:`LEVELS`."""

    @property
    def legacy(self) -> bool:
        """Neither order nor size is known: at least one side is not a parsable version."""
        return self.level == "legacy"


def _sign(number: int) -> int:
    return (number > 0) - (number < 0)


# --- Python (PEP 440) ------------------------------------------------------------------


def python_delta(before: str, after: str) -> VersionDelta:
    """Size and direction of a change between two Python package/interpreter versions."""
    try:
        old, new = Version(before), Version(after)
    except InvalidVersion:
        return VersionDelta(0, "legacy")
    order = _sign((new > old) - (new < old))
    if old.epoch != new.epoch:
        return VersionDelta(order, "epoch")
    # Pad so that 1.2 and 1.2.0 compare part by part (they are equal versions in PEP 440).
    width = max(len(old.release), len(new.release), 3)
    rel_old = old.release + (0,) * (width - len(old.release))
    rel_new = new.release + (0,) * (width - len(new.release))
    for level, a, b in zip(("major", "minor", "patch"), rel_old, rel_new):
        if a != b:
            return VersionDelta(order, level)
    if rel_old != rel_new:
        return VersionDelta(order, "patch")  # a fourth release part (1.2.3.4)
    if old.pre != new.pre:
        return VersionDelta(order, "pre")
    if old.dev != new.dev:
        return VersionDelta(order, "dev")
    if old.post != new.post:
        return VersionDelta(order, "post")
    if old.local != new.local:
        return VersionDelta(order, "local")
    return VersionDelta(order, "other")  # same version spelled differently (1.0 vs 1.0.0)


# --- Debian ----------------------------------------------------------------------------


def _deb_order(char: str) -> int:
    # dpkg's weight of one character in a non-digit run: "~" below the end of the
    # string (0), letters next, then everything else above letters.
    if char == "":
        return 0
    if char == "~":
        return -1
    if char.isascii() and char.isalpha():
        return ord(char)
    return ord(char) + 256


def _digit(char: str) -> bool:
    # ASCII only: dpkg's isdigit() is locale "C", and "²".isdigit() would be wrong here.
    return "0" <= char <= "9"


def _deb_part(a: str, b: str) -> int:
    """Compare an upstream version or a revision, the way dpkg's ``verrevcmp`` does."""
    i = j = 0
    la, lb = len(a), len(b)
    while i < la or j < lb:
        # Non-digit prefix, character by character (an exhausted side weighs 0).
        while (i < la and not _digit(a[i])) or (j < lb and not _digit(b[j])):
            ca = _deb_order(a[i] if i < la and not _digit(a[i]) else "")
            cb = _deb_order(b[j] if j < lb and not _digit(b[j]) else "")
            if ca != cb:
                return _sign(ca - cb)
            if i < la and not _digit(a[i]):
                i += 1
            if j < lb and not _digit(b[j]):
                j += 1
        # Digit run, as a number (leading zeros do not count).
        si = i
        while i < la and _digit(a[i]):
            i += 1
        sj = j
        while j < lb and _digit(b[j]):
            j += 1
        na, nb = int(a[si:i] or "0"), int(b[sj:j] or "0")
        if na != nb:
            return _sign(na - nb)
    return 0


def _deb_split(version: str) -> tuple[int, str, str]:
    epoch, colon, rest = version.partition(":")
    if not colon:
        epoch, rest = "0", version
    upstream, dash, revision = rest.rpartition("-")
    if not dash:
        upstream, revision = rest, ""
    try:
        number = int(epoch) if epoch else 0
    except ValueError:
        number, upstream = 0, rest if colon else upstream
    return number, upstream, revision


def compare_debian(a: str, b: str) -> int:
    """``dpkg --compare-versions``: -1, 0 or 1 for ``a`` older, equal or newer than ``b``."""
    ea, ua, ra = _deb_split(a.strip())
    eb, ub, rb = _deb_split(b.strip())
    if ea != eb:
        return _sign(ea - eb)
    return _deb_part(ua, ub) or _deb_part(ra, rb)


# --- RPM -------------------------------------------------------------------------------

_RPM_SEGMENT = re.compile(r"[0-9]+|[A-Za-z]+")


def compare_rpmvercmp(a: str, b: str) -> int:
    """RPM's ``rpmvercmp`` on one version or release string: -1, 0 or 1."""
    if a == b:
        return 0
    i = j = 0
    la, lb = len(a), len(b)

    def skip(text: str, pos: int) -> int:
        # Separators (anything not alphanumeric, "~" or "^") only split segments.
        while pos < len(text) and not (
            (text[pos].isascii() and text[pos].isalnum()) or text[pos] in "~^"
        ):
            pos += 1
        return pos

    while i < la or j < lb:
        i, j = skip(a, i), skip(b, j)
        ca = a[i] if i < la else ""
        cb = b[j] if j < lb else ""
        marker = _rpm_marker(ca, cb)
        if marker is not None:
            if marker:
                return marker
            i, j = i + 1, j + 1
            continue
        if not (ca and cb):
            break
        numeric = ca.isdigit()
        seg_a = _take(a, i, numeric)
        seg_b = _take(b, j, numeric)
        i, j = i + len(seg_a), j + len(seg_b)
        if not seg_b:
            # Segments of different kinds: a number beats letters.
            return 1 if numeric else -1
        if numeric:
            seg_a, seg_b = seg_a.lstrip("0"), seg_b.lstrip("0")
            if len(seg_a) != len(seg_b):
                return _sign(len(seg_a) - len(seg_b))
        if seg_a != seg_b:
            return 1 if seg_a > seg_b else -1
    if i >= la and j >= lb:
        return 0
    return -1 if i >= la else 1


def _rpm_marker(ca: str, cb: str) -> int | None:
    """Order decided by ``~``/``^`` at the current position: ±1, 0 (both skip it) or None."""
    if ca == "~" or cb == "~":
        # "~" sorts before anything, even the end of the string: 1.0~rc1 < 1.0.
        if ca != "~":
            return 1
        return -1 if cb != "~" else 0
    if ca == "^" or cb == "^":
        # "^" sorts after the end of the string but before any other segment:
        # 1.0 < 1.0^git1 < 1.0.1.
        if not ca:
            return -1
        if not cb:
            return 1
        if ca != "^":
            return 1
        return -1 if cb != "^" else 0
    return None


def _take(text: str, pos: int, numeric: bool) -> str:
    end = pos
    while (
        end < len(text)
        and text[end].isascii()
        and (text[end].isdigit() if numeric else text[end].isalpha())
    ):
        end += 1
    return text[pos:end]


def _rpm_split(evr: str) -> tuple[str, str, str]:
    epoch, colon, rest = evr.partition(":")
    if not colon:
        epoch, rest = "", evr
    version, dash, release = rest.rpartition("-")
    if not dash:
        version, release = rest, ""
    return epoch, version, release


def _rpm_epoch(text: str) -> int:
    """An RPM epoch as rpm reads it: a number ("00" is 0), else 0."""
    return int(text) if text.isdigit() else 0


def compare_rpm(a: str, b: str) -> int:
    """Compare two ``[epoch:]version[-release]`` strings like ``rpm.vercmp``."""
    ea, va, ra = _rpm_split(a.strip())
    eb, vb, rb = _rpm_split(b.strip())
    ia, ib = _rpm_epoch(ea), _rpm_epoch(eb)
    if ia != ib:
        return _sign(ia - ib)
    # Like rpm.vercmp (rpmverCmp), a missing release is an empty one: 1.0-1 > 1.0.
    # (Only dependency ranges ignore a missing release; installed versions have one.)
    return compare_rpmvercmp(va, vb) or compare_rpmvercmp(ra, rb)


# --- apk and others --------------------------------------------------------------------

_NATURAL = re.compile(r"(\d+)|(\D+)")


def compare_natural(a: str, b: str) -> int:
    """Digit runs as numbers, other runs as text: a fallback ordering for unknown managers."""
    ka = [(0, int(d), "") if d else (1, 0, t) for d, t in _NATURAL.findall(a)]
    kb = [(0, int(d), "") if d else (1, 0, t) for d, t in _NATURAL.findall(b)]
    return _sign((ka > kb) - (ka < kb))


def compare_apk(a: str, b: str) -> int:
    """Alpine ``X.Y.Z[_suffix]-rN``: upstream naturally, then the ``-rN`` package release."""
    ua, _, ra = a.partition("-r")
    ub, _, rb = b.partition("-r")
    return compare_natural(ua, ub) or compare_natural(ra, rb)


# --- size of a system-package change ----------------------------------------------------

_NUMBERS = re.compile(r"\d+")


def _upstream_numbers(upstream: str) -> list[int]:
    return [int(n) for n in _NUMBERS.findall(upstream)[:2]]


def system_delta(manager: str | None, before: str, after: str) -> VersionDelta:
    """Direction and size of a system package version change.

    The direction follows the manager's own ordering; the size is read from the upstream
    part: epoch, first number (major), second number (minor), anything else (patch,
    including a packaging revision/release only change).
    """
    kind = (manager or "").lower()
    if kind in ("dpkg", "deb", "apt", "debian"):
        order = compare_debian(before, after)
        e1, u1, _ = _deb_split(before)
        e2, u2, _ = _deb_split(after)
        epochs = (str(e1), str(e2))
    elif kind in ("rpm", "dnf", "yum", "zypper"):
        order = compare_rpm(before, after)
        s1, u1, _ = _rpm_split(before)
        s2, u2, _ = _rpm_split(after)
        epochs = (str(_rpm_epoch(s1)), str(_rpm_epoch(s2)))
    else:
        order = compare_apk(before, after) if kind == "apk" else compare_natural(before, after)
        u1, u2 = before.partition("-r")[0], after.partition("-r")[0]
        epochs = ("0", "0")
    order = -order if order else 0  # compare_* say how `before` relates to `after`
    if epochs[0] != epochs[1]:
        return VersionDelta(order, "epoch")
    n1, n2 = _upstream_numbers(u1), _upstream_numbers(u2)
    for level, index in (("major", 0), ("minor", 1)):
        a = n1[index] if index < len(n1) else None
        b = n2[index] if index < len(n2) else None
        if a != b:
            return VersionDelta(order, level)
    return VersionDelta(order, "patch")


def delta(section: str, manager: str | None, before: str, after: str) -> VersionDelta:
    """Dispatch: Python versions for Python things, the manager's ordering otherwise."""
    if section == "system_packages":
        return system_delta(manager, before, after)
    return python_delta(before, after)
