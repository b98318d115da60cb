"""The test harness itself works: real wheels install into real 3.x and 2.7 virtualenvs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


@pytest.mark.slow
def test_dev_and_prod_venvs_hold_their_fixture_packages(dev_venv: Path, prod_venv: Path) -> None:
    code = "import sys, requests; print('%d %s' % (sys.version_info[0], requests.__version__))"
    dev = subprocess.run([str(dev_venv), "-c", code], capture_output=True, text=True, check=True)
    prod = subprocess.run([str(prod_venv), "-c", code], capture_output=True, text=True, check=True)
    assert dev.stdout.split() == ["3", "2.31.0"]
    assert prod.stdout.split() == ["2", "2.27.1"]
