"""Properties: diff(A, A) is empty, diff(B, A) mirrors diff(A, B), any input gives 0/1/2."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from diff_manifests import dev_sections, make
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envpack.cli import main
from envpack.diff.compare import compare
from envpack.diff.model import Change, ChangeKind
from envpack.manifest import dumps

MIRROR = {
    ChangeKind.ADDED: ChangeKind.REMOVED,
    ChangeKind.REMOVED: ChangeKind.ADDED,
    ChangeKind.UPGRADED: ChangeKind.DOWNGRADED,
    ChangeKind.DOWNGRADED: ChangeKind.UPGRADED,
    ChangeKind.CHANGED: ChangeKind.CHANGED,
}

versions = st.sampled_from(
    ["1.0", "1.0.0", "1.0.1", "1.1", "2.0", "2.0rc1", "2.0.post1", "1!0.5", "2004d", "1.0-foo",
     "3.0.11-1~deb12u2", "3.0.11-1", "1:2.0", "2.7.18", "3.11.7"]
)  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from(["a", "b", "hmac-sha256:" + "0" * 32]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["x", "y", "x.y"]), inner, max_size=3),
    ),
    max_leaves=6,
)


@st.composite
def components(draw: st.DrawFn, section: str) -> dict[str, Any]:
    component: dict[str, Any] = draw(
        st.dictionaries(st.sampled_from(["f", "g", "keys"]), values, max_size=2)
    )
    if draw(st.booleans()):
        component["version"] = draw(versions)
    if section == "system_packages":
        component["manager"] = draw(st.sampled_from(["dpkg", "rpm", "apk", "other"]))
    if section == "interpreters":
        component["primary"] = draw(st.booleans())
    if section == "libraries" and draw(st.booleans()):
        component["needed_by"] = ["x"]
    return component


KEYS = {
    "interpreters": ["/a/python", "/b/python", "/c/python"],
    "python_packages": ["requests", "six", "attrs"],
    "system_packages": ["libc6", "openssl"],
    "libraries": ["libssl.so.1.1", "libssl.so.3", "libz.so.1", "libfoo.so"],
    "config_files": ["/etc/a.ini"],
    "env": ["PATH", "HTTP_PROXY"],
    "network": ["dns", "listen:tcp:1"],
    "os": ["release", "libc"],
}


@st.composite
def section_sets(draw: st.DrawFn) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for section in draw(st.lists(st.sampled_from(sorted(KEYS)), unique=True, max_size=4)):
        keys = draw(st.lists(st.sampled_from(KEYS[section]), unique=True, max_size=3))
        out[section] = {k: draw(components(section)) for k in keys}
    return out


def canon(change: Change, mirrored: bool = False) -> tuple[Any, ...]:
    before, after = (change.after, change.before) if mirrored else (change.before, change.after)
    kind = MIRROR[change.kind] if mirrored else change.kind
    return (change.section, change.key, change.field, kind, _dump(before), _dump(after))


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(section_sets(), st.integers(0, 2))
def test_diff_with_itself_is_empty(sections: dict[str, dict[str, Any]], issues: int) -> None:
    assert compare(make("a", sections, issues), make("b", sections, issues)).changes == []


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(section_sets(), section_sets(), st.integers(0, 2), st.integers(0, 2))
def test_diff_is_mirrored(
    sa: dict[str, dict[str, Any]], sb: dict[str, dict[str, Any]], ia: int, ib: int
) -> None:
    a, b = make("a", sa, ia), make("b", sb, ib)
    forward, backward = compare(a, b).changes, compare(b, a).changes
    assert sorted(canon(c, mirrored=True) for c in forward) == sorted(canon(c) for c in backward)
    # Same size of change both ways: an upgrade and the matching downgrade weigh the same.
    # (Added vs removed differ on purpose: a missing package breaks imports, a new one rarely.)
    weights = {canon(c): c.severity for c in backward}
    for change in forward:
        if change.kind in (ChangeKind.ADDED, ChangeKind.REMOVED):
            continue
        assert weights[canon(change, mirrored=True)] is change.severity, change


# --- any bytes as a manifest ---------------------------------------------------------------


def run_cli(args: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    saved = sys.argv
    sys.argv = ["envpack", *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
                code = 0
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else -1
    finally:
        sys.argv = saved
    return code, err.getvalue()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("fuzz")
    (base / "good.json").write_text(dumps(make("dev", dev_sections())), encoding="utf-8")
    (base / "req.txt").write_text("requests>=2.31\nsix; python_version < '3'\n", encoding="utf-8")
    return base


json_values = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5)
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=10,
)
manifest_documents = st.fixed_dictionaries(
    {"schema_version": st.one_of(st.just(1), st.integers(-1, 3), json_values), "meta": json_values},
    optional={
        "issues": json_values,
        "interpreters": st.dictionaries(st.text(max_size=3), json_values, max_size=2),
        "python_packages": st.dictionaries(
            st.sampled_from(["requests", "six"]), json_values, max_size=2
        ),
        "libraries": st.dictionaries(
            st.sampled_from(["libssl.so.3", "x"]), json_values, max_size=2
        ),
        "config_files": json_values,
    },
).map(lambda d: json.dumps(d).encode())
structured = section_sets().map(lambda s: dumps(make("fuzz", s)).encode())


@pytest.mark.slow
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.one_of(st.binary(max_size=200), manifest_documents, structured))
def test_any_bytes_give_exit_0_1_or_2(folder: Path, data: bytes) -> None:
    candidate = folder / "candidate.json"
    candidate.write_bytes(data)
    good = str(folder / "good.json")
    for args in (
        ["diff", good, str(candidate), "--format", "json"],
        ["diff", str(candidate), good, "--requirements", str(folder / "req.txt")],
    ):
        code, err = run_cli(args)
        assert code in (0, 1, 2), err
        assert "Traceback" not in err and "internal error" not in err
        if code == 2:
            assert err.count("\n") == 1 and err.startswith("envpack: error: ")
