"""The capture pipeline: section selection and what ``--only`` pulls in."""

from __future__ import annotations

import pytest

from envpack.errors import UsageError
from envpack.redact import Redactor
from envpack.snapshot.capture import capture, with_inputs
from envpack.snapshot.context import CaptureOptions
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
