"""Session fixtures shared by the whole suite: real wheels and real virtualenvs."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from realenv import build_wheel, make_venv, pyenv_python

# No per-example deadline anywhere: on a shared, loaded CI machine one slow example is a
# pause of the machine, not a bug, and Hypothesis would report it as a failure.
settings.register_profile("envpack", deadline=None)
settings.load_profile("envpack")

# The dev environment (CPython 3.11) and the prod one (CPython 2.7) overlap on purpose:
# same distributions at other versions, plus one only on each side.
DEV_WHEELS = ("requests-2.31.0", "urllib3-2.0.7", "six-1.16.0", "certifi-2023.7.22", "attrs-23.1.0")
PROD_WHEELS = (
    "requests-2.27.1",
    "urllib3-1.26.18",
    "six-1.16.0",
    "certifi-2021.10.8",
    "enum34-1.1.10",
)

VenvFactory = Callable[[str, tuple[str, ...]], Path]


def pytest_addoption(parser: pytest.Parser) -> None:
    # Used by tests/diff/reporters (reporter_golden.py). Declared here: pytest reads options
    # only from conftest files loaded at startup, and a second conftest.py would also clash
    # with this one as module `conftest` for mypy (tests/ has no packages).
    parser.addoption(
        "--regen-golden",
        action="store_true",
        help="Rewrite the golden report files from the current output instead of comparing.",
    )


@pytest.fixture(autouse=True)
def _isolated_redaction_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets a fixed key unless it sets its own: no key file in the real home."""
    if "ENVPACK_REDACT_KEY" not in os.environ:
        monkeypatch.setenv("ENVPACK_REDACT_KEY", "envpack-test-key")


@pytest.fixture(scope="session")
def real_env_base() -> Iterator[Path]:
    """A folder for the session's wheels and virtualenvs whose path length never changes.

    pytest's own temporary folders grow a digit with its run counter (pytest-99 →
    pytest-100), and installed files embed their paths (direct_url.json, .pyc files), so
    RECORD sizes would drift between runs and golden reports with them.
    """
    base = Path(tempfile.mkdtemp(prefix="envpack-tests-"))
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def wheel_dir(real_env_base: Path) -> Path:
    """A folder holding a real wheel for every source tree in fixtures/wheels/."""
    out = real_env_base / "wheels"
    for source in sorted((Path(__file__).parent.parent / "fixtures" / "wheels").iterdir()):
        if source.is_dir():
            build_wheel(source.name, out)
    return out


@pytest.fixture(scope="session")
def venv_factory(real_env_base: Path, wheel_dir: Path) -> VenvFactory:
    """Make (once per session) a virtualenv of a pyenv CPython with fixture wheels in it."""
    made: dict[tuple[str, tuple[str, ...]], Path] = {}

    def factory(version: str, wheels: tuple[str, ...] = ()) -> Path:
        key = (version, wheels)
        if key not in made:
            base = pyenv_python(version)
            if base is None:
                pytest.skip(f"CPython {version} is not installed (pyenv versions)")
            digest = hashlib.sha256(repr(key).encode()).hexdigest()[:8]
            dest = real_env_base / f"venv-{digest}"
            files = [next(wheel_dir.glob(f"{w}-*.whl")) for w in wheels]
            made[key] = make_venv(base, dest, files)
        return made[key]

    return factory


@pytest.fixture(scope="session")
def dev_venv(venv_factory: VenvFactory) -> Path:
    """Python of a CPython 3.11 virtualenv holding DEV_WHEELS."""
    return venv_factory("3.11", DEV_WHEELS)


@pytest.fixture(scope="session")
def prod_venv(venv_factory: VenvFactory) -> Path:
    """Python of a CPython 2.7 virtualenv (virtualenv 20.15.1) holding PROD_WHEELS."""
    return venv_factory("2.7", PROD_WHEELS)


@pytest.fixture
def clean_env() -> Iterator[dict[str, str]]:
    """A copy of the environment for child processes, with a fixed redaction key."""
    env = dict(os.environ)
    env.setdefault("ENVPACK_REDACT_KEY", "envpack-test-key")
    env.pop("VIRTUAL_ENV", None)
    yield env


@pytest.fixture(scope="session")
def docker_client() -> Any:
    """A Docker SDK client of a running Docker Engine (``DOCKER_HOST``; ``.ci/run`` starts one).

    Skips, with the reason, only where no engine answers: CI always starts one.
    """
    import docker

    where = os.environ.get("DOCKER_HOST", "the default socket")
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://"):
        # The SDK leaks the socket of a failed unix connect (a ResourceWarning, an error
        # here): try the socket ourselves first.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            try:
                sock.connect(host[len("unix://") :])
            except OSError as err:
                pytest.skip(
                    f"no Docker Engine answers at {where} ({err}); `.ci/services start` starts one"
                )
    try:
        docker.from_env(timeout=10).close()
    except Exception as err:  # the SDK raises several unrelated types for "no engine"
        pytest.skip(f"no Docker Engine answers at {where} ({err}); `.ci/services start` starts one")
    return docker.from_env(timeout=120)
