"""The capture pipeline: section selection, what ``--only`` pulls in, deferred steps."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from envpack.errors import UsageError
from envpack.redact import Redactor
from envpack.snapshot.capture import capture, with_inputs
from envpack.snapshot.context import CaptureContext, CaptureOptions
from envpack.snapshot.probes import PROBES
from envpack.snapshot.source import Source


def test_only_pulls_in_the_sections_a_probe_reads() -> None:
    assert with_inputs(frozenset({"os"})) == {"os"}
    assert with_inputs(frozenset({"python_packages"})) == {"python_packages", "interpreters"}
    assert with_inputs(frozenset({"libraries"})) == {
        "libraries",
        "binaries",
        "python_packages",
        "interpreters",
    }


def test_inputs_run_before_the_probes_that_read_them() -> None:
    from envpack.snapshot.probes import PROBE_INPUTS

    order = [name for name, _ in PROBES]
    for section, inputs in PROBE_INPUTS.items():
        assert all(order.index(needed) < order.index(section) for needed in inputs)


def test_only_python_packages_captures_the_real_packages() -> None:
    manifest = capture(
        Source.live(), CaptureOptions(only=frozenset({"python_packages"})), Redactor(b"k")
    )
    assert set(manifest.sections) == {"interpreters", "python_packages"}
    assert manifest.sections["python_packages"], "python3 on PATH has packages (pip at least)"


def test_unknown_section_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown section 'bogus'"):
        capture(Source.live(), CaptureOptions(only=frozenset({"bogus"})), Redactor(b"k"))


def test_deferred_steps_run_in_order_once() -> None:
    ctx = CaptureContext(source=Source.live(), options=CaptureOptions(), redactor=Redactor(b"k"))
    ran: list[str] = []
    ctx.defer(lambda: ran.append("binaries"))
    ctx.defer(lambda: ran.append("libraries"))
    assert ran == []
    ctx.finish()
    ctx.finish()
    assert ran == ["binaries", "libraries"]


def test_hashes_collected_after_the_probes_are_the_files_hashes(tmp_path: Path) -> None:
    # Binaries and libraries hash in the background and are filled in after the last
    # probe: every digest must still be the file's own, as hashlib computes it.
    manifest = capture(
        Source.live(environ={"PATH": str(Path(sys.executable).parent) + ":/usr/bin"}),
        CaptureOptions(
            only=frozenset({"libraries"}), cache_dir=tmp_path / "cache", pythons=(sys.executable,)
        ),
        Redactor(b"k"),
    )
    components = [
        *manifest.sections["binaries"].values(),
        *manifest.sections["libraries"].values(),
    ]
    assert len(manifest.sections["libraries"]) > 10
    for component in components:
        expected = hashlib.sha256(Path(component["real_path"]).read_bytes()).hexdigest()
        assert component["sha256"] == expected, component["real_path"]


def test_a_virtualenv_console_script_is_owned_by_its_distribution(
    prod_venv: Path, tmp_path: Path
) -> None:
    # The binaries probe names Python owners from python_packages, so it must run after.
    manifest = capture(
        Source.live(environ={"PATH": str(prod_venv.parent)}),
        CaptureOptions(
            only=frozenset({"binaries", "python_packages"}),
            cache_dir=tmp_path / "cache",
            pythons=(str(prod_venv),),
        ),
        Redactor(b"k"),
    )
    pip = manifest.sections["python_packages"]["pip"]
    owner = manifest.sections["binaries"]["pip"]["owner"]
    assert owner == {"kind": "python", "name": "pip", "version": pip["version"]}


def test_sections_come_in_the_manifest_order_whatever_order_the_probes_ran(
    tmp_path: Path,
) -> None:
    manifest = capture(
        Source.live(environ={"PATH": "/usr/bin"}),
        CaptureOptions(only=frozenset({"os", "binaries", "env"}), cache_dir=tmp_path / "cache"),
        Redactor(b"k"),
    )
    assert list(manifest.sections) == ["os", "binaries", "env"]
