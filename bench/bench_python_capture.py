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

import os
import subprocess

from benchlib import (
    child_env,
    envpack_command,
    interleaved,
    medians,
    parse_venv_args,
    time_run,
)

GOAL = 0.5


def main() -> None:
    repeat, python = parse_venv_args(__doc__.splitlines()[0], repeat=7, minimum=5)
    env = child_env()
    envpack_cmd = [
        *envpack_command(), "capture", "--python", str(python),
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
    envpack_runs, pip_runs = interleaved(
        lambda: time_run(envpack_cmd, env), lambda: time_run(pip_cmd, env), repeat
    )
    envpack_wall, envpack_cpu = medians(envpack_runs)
    pip_wall, pip_cpu = medians(pip_runs)
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
