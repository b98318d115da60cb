"""What the capture benchmarks share: the child environment and timing one run."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import time
from collections.abc import Callable

__all__ = ["child_env", "interleaved", "medians", "time_run"]


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
