"""Benchmark: `envpack capture` of a virtualenv against `pip inspect` of the same one.

Makes (once, cached in bench/.venvs/) a CPython 3.11 venv holding about 25 distributions
from PyPI (flask, requests, numpy, psycopg2-binary, pyyaml, cryptography and their
dependencies), then times, in the same run and alternating, REPEAT runs of each:

    envpack capture --python VENV/bin/python --only interpreters --only python_packages \
        --only os --only env -o /dev/null -q
    VENV/bin/python -m pip inspect > /dev/null

and prints both medians and their ratio. Goal: envpack <= 0.5x pip inspect.

Run: python3 bench/bench_python_capture.py [--repeat N] [--python /path/to/python3.11]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from benchlib import child_env, time_run

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"
REQUIREMENTS = (
    "flask", "requests", "numpy", "psycopg2-binary", "pyyaml", "cryptography",
    # Rounds the venv up to about 25 distributions, as the issue asks.
    "python-dateutil", "attrs", "packaging", "pytz",
)  # fmt: skip
GOAL = 0.5


def _find_python311() -> str:
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


def ensure_venv(base_python: str) -> Path:
    """The cached benchmark venv; made with `python -m venv` and its own pip."""
    venv = VENVS / "py311-25dists"
    python = venv / "bin" / "python"
    marker = venv / ".complete"
    wanted = " ".join(REQUIREMENTS) + "\n"
    if marker.exists() and python.exists() and marker.read_text() == wanted:
        return python
    if venv.exists():
        shutil.rmtree(venv)
    VENVS.mkdir(parents=True, exist_ok=True)
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *REQUIREMENTS],
        check=True,
    )
    marker.write_text(wanted)
    return python


def _envpack_command() -> list[str]:
    # The console script beside this Python, not a version manager's shim on PATH (pyenv's
    # shim is a shell script adding ~100 ms that is no part of envpack; pip inspect below
    # runs the venv's python directly, too).
    beside = Path(sys.executable).parent / "envpack"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("envpack")
    return [found] if found else [sys.executable, "-m", "envpack"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs of each tool (min 5)")
    parser.add_argument("--python", help="base CPython 3.11 for the venv")
    args = parser.parse_args()
    repeat = max(5, args.repeat)
    python = ensure_venv(args.python or _find_python311())
    env = child_env()
    envpack_cmd = [
        *_envpack_command(), "capture", "--python", str(python),
        "--only", "interpreters", "--only", "python_packages", "--only", "os", "--only", "env",
        "-o", os.devnull, "-q",
    ]  # fmt: skip
    pip_cmd = [str(python), "-m", "pip", "inspect", "--disable-pip-version-check"]
    count = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
        capture_output=True, text=True, check=True, env=env,
    ).stdout.count("\n")  # fmt: skip
    # One untimed run of each warms the page cache and the .pyc files.
    time_run(envpack_cmd, env)
    time_run(pip_cmd, env)
    envpack_runs: list[tuple[float, float]] = []
    pip_runs: list[tuple[float, float]] = []
    for _ in range(repeat):
        envpack_runs.append(time_run(envpack_cmd, env))
        pip_runs.append(time_run(pip_cmd, env))
    envpack_wall = statistics.median(run[0] for run in envpack_runs)
    pip_wall = statistics.median(run[0] for run in pip_runs)
    envpack_cpu = statistics.median(run[1] for run in envpack_runs)
    pip_cpu = statistics.median(run[1] for run in pip_runs)
    ratio = envpack_wall / pip_wall
    print(f"venv: {python} ({count} distributions)")
    print(f"envpack: {' '.join(envpack_cmd)}")
    print(f"pip:     {' '.join(pip_cmd)} > /dev/null")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print(
        f"envpack capture: median wall {envpack_wall * 1000:.1f} ms, "
        f"cpu {envpack_cpu * 1000:.1f} ms over {repeat} runs"
    )
    print(
        f"pip inspect:     median wall {pip_wall * 1000:.1f} ms, "
        f"cpu {pip_cpu * 1000:.1f} ms over {repeat} runs"
    )
    verdict = "meets" if ratio <= GOAL else "MISSES"
    print(f"ratio envpack/pip inspect (wall): {ratio:.2f} ({verdict} the goal <= {GOAL})")
    print(f"ratio envpack/pip inspect (cpu):  {envpack_cpu / pip_cpu:.2f}")


if __name__ == "__main__":
    main()
