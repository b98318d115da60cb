"""Pure tests of the layer split (pack/layering.py) on hand-made planned files."""

from __future__ import annotations

import io
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from envpack.errors import PackError
from envpack.oci.tarlayer import TarEntry, ordered_entries
from envpack.pack.layering import SMALL_LAYER, LayerGroup, group_files, tar_order
from envpack.pack.plan import PlannedFile

MIB = 1024 * 1024


def _file(path: str, group: str, size: int = 10, origin: str = "include") -> PlannedFile:
    entry = TarEntry(
        path=path, kind="file", mode=0o644, size=size, open=lambda: io.BytesIO(b"x" * size)
    )
    return PlannedFile(entry=entry, group=group, origin=origin, source_path=path)


def _link(path: str, target: str, group: str) -> PlannedFile:
    entry = TarEntry(path=path, kind="hardlink", mode=0o755, linkname=target)
    return PlannedFile(entry=entry, group=group, origin="interpreter", source_path=path)


def _names(groups: list[LayerGroup]) -> list[str]:
    return [g.name for g in groups]


def _paths(group: LayerGroup) -> set[str]:
    return {f.entry.path for f in group.files}


def test_layers_go_from_least_to_most_changing() -> None:
    files = [
        _file("/srv/app/main.py", "app"),
        _file("/etc/pip.conf", "config"),
        _file("/etc/passwd", "base"),
        _file("/usr/lib/x86_64-linux-gnu/libLarge.so", "syslib:libbig", SMALL_LAYER),
        _file("/usr/lib/x86_64-linux-gnu/libz.so.1", "syslib:zlib1g", 100_000),
        _file("/usr/lib/x86_64-linux-gnu/libffi.so.8", "syslib:libffi8", 40_000),
        _file("/lib64/ld-linux-x86-64.so.2", "loader", 200_000),
        _file("/opt/py/bin/python3.11", "interpreter"),
        _file("/opt/py/lib/python3.11/os.py", "stdlib"),
        _file("/opt/py/lib/python3.11/__pycache__/os.cpython-311.pyc", "bytecode:stdlib"),
        _file("/venv/lib/python3.11/site-packages/flask/app.py", "site-packages"),
        _file(
            "/venv/lib/python3.11/site-packages/flask/__pycache__/app.pyc", "bytecode:site-packages"
        ),
        _file("/srv/app/__pycache__/main.cpython-311.pyc", "bytecode:app"),
    ]
    groups = group_files(files)
    assert _names(groups) == [
        "base",
        "syslib:libbig",
        "syslib:small",
        "python",
        "site-packages",
        "app",
        "config",
    ]
    by_name = {g.name: g for g in groups}
    # Small packages and the loader share one layer; the big package has its own.
    assert _paths(by_name["syslib:small"]) == {
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "/usr/lib/x86_64-linux-gnu/libffi.so.8",
        "/lib64/ld-linux-x86-64.so.2",
    }
    # Bytecode travels with the source it was compiled from.
    assert "/srv/app/__pycache__/main.cpython-311.pyc" in _paths(by_name["app"])
    assert "/opt/py/lib/python3.11/__pycache__/os.cpython-311.pyc" in _paths(by_name["python"])
    assert by_name["syslib:small"].size == 340_000


def test_big_distributions_get_their_own_layer_with_their_bytecode() -> None:
    site = "/venv/lib/python3.11/site-packages"
    files = [
        _file(f"{site}/numpy/core.so", "site-packages", SMALL_LAYER, origin="dist:numpy"),
        _file(f"{site}/numpy/__init__.py", "site-packages", 100, origin="dist:numpy"),
        _file(
            f"{site}/numpy/__pycache__/__init__.cpython-311.pyc",
            "bytecode:site-packages",
            origin="generated",
        ),
        _file(f"{site}/flask/app.py", "site-packages", 1000, origin="dist:flask"),
        _file(f"{site}/flask/app.pyc", "bytecode:site-packages", origin="generated"),
        _file(f"{site}/zzz.pth", "site-packages", 10, origin="generated"),
        _file("/srv/app/main.py", "app"),
    ]
    groups = group_files(files)
    # The big distribution below the shared layer of the small ones, which change more.
    assert _names(groups) == ["site-packages:numpy", "site-packages", "app"]
    assert _paths(groups[0]) == {
        f"{site}/numpy/core.so",
        f"{site}/numpy/__init__.py",
        f"{site}/numpy/__pycache__/__init__.cpython-311.pyc",
    }
    assert _paths(groups[1]) == {f"{site}/flask/app.py", f"{site}/flask/app.pyc", f"{site}/zzz.pth"}


def test_distribution_of_a_venv_file_comes_from_its_path() -> None:
    site = "/venv/lib/python3.11/site-packages"
    big = SMALL_LAYER // 2
    files = [
        _file(f"{site}/numpy/core.so", "site-packages", big, origin="interpreter"),
        _file(f"{site}/numpy.libs/libopenblas.so", "site-packages", big, origin="interpreter"),
        _file(f"{site}/numpy-2.1.3.dist-info/RECORD", "site-packages", origin="interpreter"),
        _file(
            f"{site}/numpy/__pycache__/x.cpython-311.pyc",
            "bytecode:site-packages",
            origin="generated",
        ),
        _file(f"{site}/six.py", "site-packages", origin="interpreter"),
        _file(f"{site}/__pycache__/six.cpython-311.pyc", "bytecode:site-packages"),
    ]
    groups = {g.name: g for g in group_files(files)}
    assert sorted(groups) == ["site-packages", "site-packages:numpy"]
    assert len(groups["site-packages:numpy"].files) == 4
    assert _paths(groups["site-packages"]) == {
        f"{site}/six.py",
        f"{site}/__pycache__/six.cpython-311.pyc",
    }


def test_unknown_group_sits_below_the_application() -> None:
    groups = group_files([_file("/a", "app"), _file("/b", "future-thing"), _file("/c", "base")])
    assert _names(groups) == ["base", "future-thing", "app"]


def test_hardlink_follows_its_file_into_that_layer() -> None:
    files = [
        _file("/opt/py/bin/python3.11", "interpreter", 1000),
        _link("/venv/bin/python", "/opt/py/bin/python3.11", "site-packages"),
        _file("/venv/lib/site-packages/x.py", "site-packages"),
    ]
    groups = {g.name: g for g in group_files(files)}
    assert _paths(groups["python"]) == {"/opt/py/bin/python3.11", "/venv/bin/python"}
    assert _paths(groups["site-packages"]) == {"/venv/lib/site-packages/x.py"}


def test_every_layer_repeats_the_plans_parent_folders() -> None:
    root_dir = PlannedFile(TarEntry(path="/root", kind="dir", mode=0o700), "base", "generated")
    files = [
        root_dir,
        _file("/root/.pyenv/versions/3.11/bin/python3.11", "interpreter"),
        _file("/root/app/main.py", "app"),
    ]
    groups = {g.name: g for g in group_files(files)}
    for name in ("base", "python", "app"):
        assert root_dir in groups[name].files, name
    assert _paths(groups["app"]) == {"/root", "/root/app/main.py"}


def test_hardlink_to_a_file_the_image_lacks_is_refused() -> None:
    with pytest.raises(PackError, match="/usr/bin/missing"):
        group_files([_link("/usr/bin/a", "/usr/bin/missing", "base")])


def test_many_packages_fit_in_max_layers_smallest_pairs_merged_first() -> None:
    files = [
        _file(f"/usr/lib/lib{i:03}.so", f"syslib:pkg{i:03}", SMALL_LAYER * (1 if i < 290 else 50))
        for i in range(300)
    ]
    files.append(_file("/srv/app/main.py", "app"))
    groups = group_files(files)
    assert len(groups) == 100
    assert sorted(f.entry.path for g in groups for f in g.files) == sorted(
        f.entry.path for f in files
    )
    # The biggest packages keep their own layers; the app stays alone on top.
    assert groups[-1].name == "app"
    assert {f"syslib:pkg{i}" for i in range(290, 300)} <= set(_names(groups))
    assert "syslib:pkg000..syslib:pkg003" in _names(groups)


def test_app_change_touches_only_the_app_layer() -> None:
    common = [_file("/etc/passwd", "base"), _file("/opt/py/bin/python", "interpreter")]
    before = group_files([*common, _file("/srv/app/main.py", "app", 10)])
    after = group_files([*common, _file("/srv/app/main.py", "app", 11)])
    changed = [
        b.name
        for b, a in zip(before, after)
        if [(e.path, e.size) for e in b.entries()] != [(e.path, e.size) for e in a.entries()]
    ]
    assert changed == ["app"]


_GROUPS = st.sampled_from(
    ["base", "loader", "interpreter", "stdlib", "site-packages", "app", "config",
     "bytecode:app", *(f"syslib:p{i}" for i in range(12))]
)  # fmt: skip


@st.composite
def _planned_sets(draw: st.DrawFn) -> list[PlannedFile]:
    count = draw(st.integers(1, 60))
    files: list[PlannedFile] = []
    for i in range(count):
        path = f"/d{draw(st.integers(0, 3))}/f{i}"
        make_link = draw(st.booleans())
        if files and make_link:
            target = draw(st.sampled_from([f for f in files if f.entry.kind == "file"]))
            files.append(_link(path, target.entry.path, draw(_GROUPS)))
        else:
            size = draw(st.integers(0, 2 * SMALL_LAYER))
            entry = TarEntry(path=path, kind="file", mode=0o644, size=size, open=io.BytesIO)
            files.append(PlannedFile(entry=entry, group=draw(_GROUPS), origin="x"))
    return files


@given(files=_planned_sets(), max_layers=st.integers(1, 8))
def test_any_input_fits_and_keeps_links_within_a_layer(
    files: list[PlannedFile], max_layers: int
) -> None:
    groups = group_files(files, max_layers=max_layers)
    assert 1 <= len(groups) <= max_layers
    assert Counter(f.entry.path for g in groups for f in g.files) == Counter(
        f.entry.path for f in files
    )
    for group in groups:
        assert group.files
        seen: set[str] = set()
        for entry in ordered_entries(group.entries()):
            if entry.kind == "hardlink":
                assert entry.linkname in seen, (entry.path, entry.linkname)
            else:
                seen.add(entry.path)
    assert sum(g.size for g in groups) == sum(f.entry.size for f in files if f.entry.kind == "file")


def test_tar_order_is_by_component() -> None:
    assert sorted(["/a/b.x", "/a/b/z", "/a"], key=tar_order) == ["/a", "/a/b/z", "/a/b.x"]
