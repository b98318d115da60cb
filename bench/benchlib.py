"""What the benchmarks share: the venv they measure, the envpack command, the child
environment, timing runs and taking medians."""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

__all__ = [
    "child_env",
    "ensure_venv",
    "envpack_command",
    "find_python311",
    "flask_image_bench",
    "flask_layout",
    "interleaved",
    "median_call",
    "medians",
    "parse_venv_args",
    "time_run",
]

T = TypeVar("T")
VENVS = Path(__file__).resolve().parent / ".venvs"
REQUIREMENTS = (
    "flask", "requests", "numpy", "psycopg2-binary", "pyyaml", "cryptography",
    # Rounds the venv up to about 25 distributions, as issue 2 asks.
    "python-dateutil", "attrs", "packaging", "pytz",
)  # fmt: skip


def find_python311() -> str:
    """A CPython 3.11 to make the benchmark venv with: pyenv's, else python3.11 on PATH."""
    root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    versions = Path(root) / "versions"
    if versions.is_dir():
        for candidate in sorted(versions.iterdir(), reverse=True):
            exe = candidate / "bin" / "python"
            if candidate.name.startswith("3.11") and exe.exists():
                return str(exe)
    found = shutil.which("python3.11")
    if found:
        return found
    raise SystemExit("bench: no CPython 3.11 found (pyenv or python3.11 on PATH); use --python")


def ensure_venv(
    base_python: str, *, name: str = "py311-25dists", requirements: Sequence[str] = REQUIREMENTS
) -> Path:
    """A cached benchmark venv (by default about 25 distributions); made with its own pip."""
    venv = VENVS / name
    python = venv / "bin" / "python"
    marker = venv / ".complete"
    wanted = " ".join(requirements) + "\n"
    if marker.exists() and python.exists() and marker.read_text() == wanted:
        return python
    if venv.exists():
        shutil.rmtree(venv)
    VENVS.mkdir(parents=True, exist_ok=True)
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *requirements],
        check=True,
    )
    marker.write_text(wanted)
    return python


FLASK_REQUIREMENTS = ("flask", "numpy", "psycopg2-binary", "PyYAML")
"""The build benchmarks' application: a small Flask app with C extensions (issue 8)."""


def flask_venv(base_python: str | None) -> Path:
    """The CPython 3.11 virtualenv the build, rebuild and push benchmarks pack."""
    return ensure_venv(
        base_python or find_python311(), name="py311-flask", requirements=FLASK_REQUIREMENTS
    )


def flask_layout(
    scratch: Path, envpack: list[str], env: dict[str, str], python: Path
) -> tuple[Path, Path]:
    """The Flask image as an OCI layout tagged ``bench:1`` (captured and built untimed, with
    the fixture app at /srv/app), and the manifest it was built from."""
    manifest = scratch / "flask.json"
    layout = scratch / "image.oci"
    app_dir = Path(__file__).resolve().parent.parent / "fixtures" / "build_app"
    subprocess.run(
        [*envpack, "capture", "-q", "--python", str(python), "-o", str(manifest)],
        env=env, check=True,
    )  # fmt: skip
    subprocess.run(
        [*envpack, "build", str(manifest), "-q", "-o", str(layout), "--tag", "bench:1",
         "--app", f"{app_dir}:/srv/app"],
        env=env, check=True,
    )  # fmt: skip
    return layout, manifest


@dataclass(frozen=True)
class FlaskImageBench:
    """What a benchmark of the built Flask image works with."""

    repeat: int
    env: dict[str, str]
    envpack: list[str]
    python: Path
    scratch: Path
    layout: Path
    manifest: Path


@contextlib.contextmanager
def flask_image_bench(
    description: str, *, prefix: str, tools: Sequence[str]
) -> Iterator[FlaskImageBench]:
    """``--repeat`` (min 3) and ``--python`` parsed, ``tools`` checked on PATH, and the Flask
    image built as an OCI layout in a scratch folder (removed after) whose envpack cache
    is its own."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--repeat", type=int, default=5, help="rounds (min 3)")
    parser.add_argument("--python", help="base CPython 3.11 for the venv")
    args = parser.parse_args()
    for tool in tools:
        if shutil.which(tool) is None:
            raise SystemExit(f"bench: {tool} is not installed (.ci/setup installs it)")
    python = flask_venv(args.python)
    env = child_env()
    envpack = envpack_command()
    with tempfile.TemporaryDirectory(prefix=prefix) as scratch_name:
        scratch = Path(scratch_name)
        env["XDG_CACHE_HOME"] = str(scratch / "cache")
        layout, manifest = flask_layout(scratch, envpack, env, python)
        yield FlaskImageBench(max(3, args.repeat), env, envpack, python, scratch, layout, manifest)


def parse_venv_args(description: str, *, repeat: int, minimum: int) -> tuple[int, Path]:
    """``--repeat`` and ``--python`` of a benchmark over the cached venv: (runs, its python)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--repeat", type=int, default=repeat, help=f"runs of each side (min {minimum})"
    )
    parser.add_argument("--python", help="base CPython 3.11 for the venv")
    args = parser.parse_args()
    return max(minimum, args.repeat), ensure_venv(args.python or find_python311())


def envpack_command() -> list[str]:
    """The envpack console script beside this Python.

    Not a version manager's shim on PATH: pyenv's shim is a shell script adding ~100 ms
    that is no part of envpack (pip inspect runs the venv's python directly, too).
    """
    beside = Path(sys.executable).parent / "envpack"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("envpack")
    return [found] if found else [sys.executable, "-m", "envpack"]


def child_env() -> dict[str, str]:
    """The environment of the timed commands: this one, cleaned of what would skew them."""
    env = dict(os.environ)
    # As installed by pip, envpack runs from bytecode; a machine that sets
    # PYTHONDONTWRITEBYTECODE would otherwise time recompiling every module each run.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("VIRTUAL_ENV", None)
    env.setdefault("ENVPACK_REDACT_KEY", "envpack-bench-key")
    return env


def time_run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + sys, all threads) of one run; stdout discarded.

    Wall time depends on the load of this shared machine; CPU time much less, so the
    benchmarks print both.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, env=env, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


Run = tuple[float, float]
"""(wall seconds, CPU seconds) of one run."""


def interleaved(
    first: Callable[[], Run], second: Callable[[], Run], repeat: int
) -> tuple[list[Run], list[Run]]:
    """``repeat`` runs of each, alternating, so a change in machine load hits both sides."""
    runs_first: list[Run] = []
    runs_second: list[Run] = []
    for _ in range(repeat):
        runs_first.append(first())
        runs_second.append(second())
    return runs_first, runs_second


def medians(runs: list[Run]) -> Run:
    """Median wall and median CPU seconds of some runs."""
    return (
        statistics.median(wall for wall, _ in runs),
        statistics.median(cpu for _, cpu in runs),
    )


def median_call(fn: Callable[[], T], repeat: int) -> tuple[float, T]:
    """Median wall seconds of ``repeat`` calls in this process, and the last result."""
    times: list[float] = []
    result: T
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result
