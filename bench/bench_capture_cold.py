"""Benchmark: a cold full `envpack capture` against hashing the same bytes with hashlib.

    python3 bench/bench_capture_cold.py [--repeat N]

"Cold" means an empty hash cache (a fresh XDG_CACHE_HOME for every run), so envpack
hashes every binary and library it records; the page cache is warm for both sides (one
untimed run of each first), so the comparison is CPU against CPU, not disk against disk.

The baseline is the cheapest way to learn the same hashes: one Python process reading
exactly the files envpack hashed (the list is recorded from an in-process capture) in
1 MiB blocks through hashlib.sha256, one after the other. Goal: envpack <= 1.2x.

The virtualenv is bench_python_capture's (about 25 distributions, cached in bench/.venvs/).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from benchlib import (
    child_env,
    envpack_command,
    interleaved,
    medians,
    parse_venv_args,
    time_run,
)

from envpack.manifest import SECTIONS
from envpack.redact import Redactor
from envpack.snapshot import hashcache
from envpack.snapshot.capture import capture
from envpack.snapshot.context import CaptureOptions
from envpack.snapshot.source import Source

GOAL = 1.2

_HASHLIB = """
import hashlib, sys
paths = open(sys.argv[1], encoding="utf-8").read().splitlines()
total = 0
for path in paths:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while True:
            block = stream.read(1 << 20)
            if not block:
                break
            digest.update(block)
            total += len(block)
print(total)
"""


def _recorded_files(python: Path, env: dict[str, str]) -> tuple[list[str], list[str]]:
    """Host paths of every file an uncached capture hashes, and the sections it filled."""
    options = CaptureOptions(pythons=(str(python),), use_cache=False)
    with hashcache.recording() as hashed:
        manifest = capture(Source.live(environ=env), options, Redactor(b"bench"))
        paths = list(dict.fromkeys(hashed))
    filled = [s for s in SECTIONS if manifest.sections.get(s)]
    return paths, filled


def main() -> None:
    repeat, python = parse_venv_args(__doc__.splitlines()[0], repeat=5, minimum=3)
    env = child_env()
    paths, filled = _recorded_files(python, env)
    size = sum(os.path.getsize(p) for p in paths)
    with tempfile.TemporaryDirectory(prefix="envpack-bench-") as scratch:
        listing = Path(scratch) / "files.txt"
        listing.write_text("\n".join(paths) + "\n", encoding="utf-8")
        hash_cmd = [sys.executable, "-c", _HASHLIB, str(listing)]
        envpack_cmd = [
            *envpack_command(),
            "capture",
            "--python",
            str(python),
            "-o",
            os.devnull,
            "-q",
        ]

        def cold_envpack(run: int) -> tuple[float, float]:
            cache_home = Path(scratch) / f"cache-{run}"  # empty: every hash is computed
            return time_run(envpack_cmd, {**env, "XDG_CACHE_HOME": str(cache_home)})

        cold_envpack(-1)  # untimed: warms the page cache and the .pyc files
        time_run(hash_cmd, env)
        load_before = os.getloadavg()[0]
        fresh_caches = iter(range(repeat))
        envpack_runs, hash_runs = interleaved(
            lambda: cold_envpack(next(fresh_caches)), lambda: time_run(hash_cmd, env), repeat
        )
    envpack_median, envpack_cpu = medians(envpack_runs)
    hash_median, hash_cpu = medians(hash_runs)
    ratio = envpack_median / hash_median
    print(f"sections filled: {', '.join(filled)}")
    print(f"files hashed: {len(paths)} ({size / 1e6:.0f} MB)")
    print(f"envpack: {' '.join(envpack_cmd)}  (fresh XDG_CACHE_HOME each run)")
    print(f"hashlib: one process, sha256 of the same {len(paths)} files, 1 MiB reads")
    print(f"envpack capture (cold cache): median {envpack_median:.2f} s over {repeat} runs")
    print(f"hashlib alone:                median {hash_median:.2f} s over {repeat} runs")
    verdict = "meets" if ratio <= GOAL else "MISSES"
    print(f"ratio envpack/hashlib: {ratio:.2f} ({verdict} the goal <= {GOAL})")
    print(
        f"CPU (user+sys) medians: envpack {envpack_cpu:.2f} s, hashlib {hash_cpu:.2f} s, "
        f"ratio {envpack_cpu / hash_cpu:.2f}; load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after on {os.cpu_count()} CPUs (envpack hashes in "
        "threads: wall time gains from idle cores only)"
    )


if __name__ == "__main__":
    main()
