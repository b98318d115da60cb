"""--requirements: requirements.txt / pyproject.toml checked in each environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from diff_manifests import dev_sections, make

from envpack.diff.model import ChangeKind, Severity
from envpack.diff.requirements import check, load_requirements
from envpack.errors import DiffError


def prod_sections() -> dict[str, Any]:
    s = dev_sections()
    interp = s["interpreters"]["/srv/dev/venv/bin/python"]
    interp["version"] = "2.7.18"
    interp["markers"] = {
        "python_version": "2.7",
        "python_full_version": "2.7.18",
        "sys_platform": "linux2",
        "implementation_name": "cpython",
    }
    s["python_packages"]["requests"]["version"] = "2.27.1"
    del s["python_packages"]["attrs"]
    s["python_packages"]["enum34"] = {"name": "enum34", "version": "1.1.10"}
    return s


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def reasons(path: Path, sections: dict[str, Any], label: str = "prod") -> list[str]:
    return [c.reason for c in check(load_requirements(path), make(label, sections))]


def test_unsatisfied_and_missing(tmp_path: Path) -> None:
    path = write(tmp_path, "requirements.txt", "requests>=2.31\nattrs  # we use it\nsix==1.16.0\n")
    changes = check(load_requirements(path), make("prod", prod_sections()))
    assert [c.reason for c in changes] == [
        "prod: requests 2.27.1 does not satisfy requests>=2.31",
        "prod: attrs is not installed (required: attrs)",
    ]
    for change in changes:
        assert change.section == "requirements"
        assert change.field == "prod"
        assert change.kind is ChangeKind.UNSATISFIED
        assert change.severity is Severity.CRITICAL
    assert changes[0].key == "requests>=2.31"
    assert changes[0].after == "2.27.1"
    assert changes[1].after is None


def test_satisfied_environment_gives_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, "requirements.txt", "requests>=2.31\nattrs\nsix\n")
    assert reasons(path, dev_sections(), "dev") == []


def test_markers_use_the_recorded_interpreter(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "requirements.txt",
        'enum34; python_version < "3.4"\n'
        'attrs>=20; python_version >= "3"\n'
        'pywin32; sys_platform == "win32"\n'
        'extra-thing; extra == "docs"\n',
    )
    # 2.7 needs enum34 (present) and not attrs; 3.11 needs attrs (present) and not enum34.
    assert reasons(path, prod_sections()) == []
    assert reasons(path, dev_sections(), "dev") == []
    three = dev_sections()
    del three["python_packages"]["attrs"]
    assert reasons(path, three, "dev") == ["dev: attrs is not installed (required: attrs>=20)"]


def test_prereleases_are_allowed(tmp_path: Path) -> None:
    sections = dev_sections()
    sections["python_packages"]["attrs"]["version"] = "24.0.0rc1"
    path = write(tmp_path, "requirements.txt", "attrs>=23.2\n")
    assert reasons(path, sections, "dev") == []


def test_includes_continuations_hashes_and_options(tmp_path: Path) -> None:
    write(tmp_path, "base.txt", "requests>=2.31 \\\n    --hash=sha256:abc\n")
    write(tmp_path, "constraints.txt", "whatever==1\n")
    path = write(
        tmp_path,
        "requirements.txt",
        "--index-url https://pypi.example/simple\n"
        "-r base.txt\n"
        "-c constraints.txt\n"
        "-e ./local-package\n"
        "https://example.com/pkg.tar.gz\n"
        "six>=1.16\n",
    )
    declared = load_requirements(path)
    assert [str(r) for r in declared.requirements] == ["requests>=2.31", "six>=1.16"]
    assert len(declared.notes) == 2
    assert "requirements.txt:4: editable" in declared.notes[0]
    assert "requirements.txt:5: URL" in declared.notes[1]


def test_include_loop_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "a.txt", "-r b.txt\n")
    write(tmp_path, "b.txt", "-r a.txt\n")
    with pytest.raises(DiffError, match="loop"):
        load_requirements(tmp_path / "a.txt")


def test_bad_line_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "requirements.txt", "requests>=2.31\n\nrequests >=>= 2\n")
    with pytest.raises(DiffError) as info:
        load_requirements(path)
    message = str(info.value)
    assert message.startswith(f"{path}:3: invalid requirement")
    assert "\n" not in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DiffError, match="no such requirements file"):
        load_requirements(tmp_path / "nope.txt")


def test_pyproject_dependencies_and_requires_python(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "pyproject.toml",
        '[project]\nname = "shop"\nrequires-python = ">=3.9"\n'
        'dependencies = ["requests>=2.31", "six"]\n',
    )
    assert reasons(path, prod_sections()) == [
        "prod: Python 2.7.18 does not satisfy requires-python >=3.9",
        "prod: requests 2.27.1 does not satisfy requests>=2.31",
    ]
    assert reasons(path, dev_sections(), "dev") == []


def test_pyproject_errors(tmp_path: Path) -> None:
    with pytest.raises(DiffError, match=r"no \[project\] table"):
        load_requirements(write(tmp_path, "pyproject.toml", "[tool.x]\na = 1\n"))
    with pytest.raises(DiffError, match="dependency 1"):
        load_requirements(
            write(tmp_path, "pyproject.toml", '[project]\ndependencies = ["not a req !!"]\n')
        )
    with pytest.raises(DiffError, match="invalid TOML"):
        load_requirements(write(tmp_path, "pyproject.toml", "[project\n"))
