"""What the capture benchmarks share: the child environment and timing one run."""

from __future__ import annotations

import os
import resource
import subprocess
import time

__all__ = ["child_env", "time_run"]


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
