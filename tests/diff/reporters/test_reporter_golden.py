"""Every format, on every hand-built result, matches its golden file byte for byte."""

from __future__ import annotations

import pytest
from reporter_golden import EXTENSION, Golden, redact
from reporter_samples import SAMPLES

from envpack.diff.reporters import REPORTER_IDS, get_reporter


def test_every_format_has_an_extension() -> None:
    assert set(EXTENSION) == set(REPORTER_IDS)


@pytest.mark.parametrize("format_id", REPORTER_IDS)
@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_golden_report(sample: str, format_id: str, pytestconfig: pytest.Config) -> None:
    result = SAMPLES[sample]()
    text = get_reporter(format_id).render(result)
    # Rendering is a pure function of the result.
    assert get_reporter(format_id).render(result) == text
    Golden.of(pytestconfig).check(f"{sample}.{format_id}.{EXTENSION[format_id]}", redact(text))


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_golden_colour_table(sample: str, pytestconfig: pytest.Config) -> None:
    text = get_reporter("table").render(SAMPLES[sample](), color=True)
    assert "\x1b[" in text
    Golden.of(pytestconfig).check(f"{sample}.table-color.ansi", redact(text))
