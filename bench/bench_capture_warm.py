"""Benchmark: a warm full `envpack capture` against `pip inspect` on the same virtualenv.

    python3 bench/bench_capture_warm.py [--repeat N]

Every section is captured (no --only); the hash cache is warm (a private XDG_CACHE_HOME,
filled by one untimed capture), so nothing unchanged is hashed again. pip inspect reports
only the Python distributions; envpack records those and the interpreter, OS, system
packages, binaries, libraries, config files, environment and network besides.
Goal: envpack <= 1.0x pip inspect.

The virtualenv is bench_python_capture's (about 25 distributions, cached in bench/.venvs/).
"""

from __future__ import annotations

import os
import tempfile

from benchlib import (
    child_env,
    envpack_command,
    interleaved,
    medians,
    parse_venv_args,
    time_run,
)

GOAL = 1.0


def main() -> None:
    repeat, python = parse_venv_args(__doc__.splitlines()[0], repeat=7, minimum=3)
    env = child_env()
    with tempfile.TemporaryDirectory(prefix="envpack-bench-") as cache_home:
        env["XDG_CACHE_HOME"] = cache_home
        envpack_cmd = [
            *envpack_command(),
            "capture",
            "--python",
            str(python),
            "-o",
            os.devnull,
            "-q",
        ]
        pip_cmd = [str(python), "-m", "pip", "inspect", "--disable-pip-version-check"]
        time_run(envpack_cmd, env)  # untimed: fills the hash cache, warms pages and .pyc
        time_run(pip_cmd, env)
        load_before = os.getloadavg()[0]
        envpack_runs, pip_runs = interleaved(
            lambda: time_run(envpack_cmd, env), lambda: time_run(pip_cmd, env), repeat
        )
    envpack_median, envpack_cpu = medians(envpack_runs)
    pip_median, pip_cpu = medians(pip_runs)
    ratio = envpack_median / pip_median
    print(f"envpack: {' '.join(envpack_cmd)}  (warm hash cache)")
    print(f"pip:     {' '.join(pip_cmd)} > /dev/null")
    print(f"envpack capture (all sections, warm): median {envpack_median:.2f} s over {repeat} runs")
    print(f"pip inspect:                          median {pip_median:.2f} s over {repeat} runs")
    verdict = "meets" if ratio <= GOAL else "MISSES"
    print(f"ratio envpack/pip inspect: {ratio:.2f} ({verdict} the goal <= {GOAL})")
    print(
        f"CPU (user+sys) medians: envpack {envpack_cpu:.2f} s, pip inspect {pip_cpu:.2f} s, "
        f"ratio {envpack_cpu / pip_cpu:.2f}; load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after on {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
