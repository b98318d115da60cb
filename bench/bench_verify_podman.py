"""Benchmark: `envpack verify --runner podman` of the Flask image against checking its
interpreter with podman by hand.

    python3 bench/bench_verify_podman.py [--repeat N] [--python PYTHON3.11]

The image is bench_push.py's: a CPython 3.11 virtualenv holding Flask, numpy,
psycopg2-binary and PyYAML with the fixture app, built once (untimed) as an OCI layout of
13 layers. Timed, in alternating order:

- ``envpack verify oci:LAYOUT:bench:1 MANIFEST --runner podman``: the image captured
  offline, the interpreter probed in podman (a private storage, the ``overlay`` driver),
  the diff against the manifest;
- by hand, what a user would otherwise run to see the interpreter start in the image:
  ``podman pull`` into a new storage with podman's default driver, ``podman run --rm
  --network none --read-only --entrypoint PYTHON IMAGE -c 'import flask'``, the storage
  removed; nothing is captured or compared;
- the same by hand with ``--storage-driver vfs``, which is what envpack's podman runner
  used before it tried ``overlay``.

It also prints how many bytes each driver's storage held once the image was pulled
(``du`` of the storage, untimed). Medians of wall and CPU time (with children).
"""

from __future__ import annotations

import shlex
import shutil
import statistics
import subprocess
from pathlib import Path

from benchlib import flask_image_bench, time_run

Runs = list[tuple[float, float]]
# podman 4 asks for more open files and processes than runc may set without
# CAP_SYS_RESOURCE (envpack's runner lowers them the same way).
ULIMITS = "--ulimit nofile=4096:4096 --ulimit nproc=4096:4096"


def _by_hand(store: Path, reference: str, python: Path, driver: str | None) -> list[str]:
    """One shell command: pull into a new storage, run the interpreter, remove the storage."""
    podman = f"podman --root {store}/root --runroot {store}/run --events-backend none"
    if driver:
        podman += f" --storage-driver {driver}"
    image = "$(" + f"{podman} pull -q {shlex.quote(reference)}" + ")"
    run = (
        f"{podman} run --rm --network none --read-only {ULIMITS} "
        f"--entrypoint {shlex.quote(str(python))} {image} -c 'import flask'"
    )
    return ["sh", "-c", f"{run} && {podman} system reset -f >/dev/null; rm -rf {store}"]


def _storage_bytes(scratch: Path, reference: str, driver: str) -> int:
    store = scratch / driver  # podman refuses a --runroot over 50 characters
    podman = ["podman", "--root", f"{store}/root", "--runroot", f"{store}/run",
              "--events-backend", "none", "--storage-driver", driver]  # fmt: skip
    subprocess.run([*podman, "pull", "-q", reference], check=True, capture_output=True)
    used = subprocess.run(
        ["du", "-sb", str(store)], check=True, capture_output=True, text=True
    ).stdout.split()[0]
    subprocess.run([*podman, "system", "reset", "-f"], check=True, capture_output=True)
    shutil.rmtree(store, ignore_errors=True)
    return int(used)


def main() -> None:
    with flask_image_bench(
        __doc__.splitlines()[0], prefix="envpack-bench-verify-", tools=("podman",)
    ) as bench:
        repeat, env, envpack, python, scratch, layout, manifest = (
            bench.repeat, bench.env, bench.envpack, bench.python, bench.scratch,
            bench.layout, bench.manifest,
        )  # fmt: skip
        reference = f"oci:{layout}:bench:1"
        ours = [*envpack, "verify", reference, str(manifest), "--runner", "podman", "-q"]
        runs: dict[str, Runs] = {"envpack verify": [], "by hand": [], "by hand, vfs": []}
        for round_number in range(repeat):
            commands = {
                "envpack verify": ours,
                "by hand": _by_hand(scratch / f"hand-{round_number}", reference, python, None),
                "by hand, vfs": _by_hand(scratch / f"vfs-{round_number}", reference, python, "vfs"),
            }
            order = list(commands)
            if round_number % 2:
                order.reverse()
            for name in order:
                runs[name].append(time_run(commands[name], env))
        sizes = {name: _storage_bytes(scratch, reference, name) for name in ("overlay", "vfs")}
    _report(runs, sizes, repeat)


def _report(runs: dict[str, Runs], sizes: dict[str, int], repeat: int) -> None:
    wall = {name: statistics.median(run[0] for run in got) for name, got in runs.items()}
    cpu = {name: statistics.median(run[1] for run in got) for name, got in runs.items()}
    print(f"{repeat} rounds")
    for name in runs:
        print(f"{name}: {wall[name]:.2f} s (CPU {cpu[name]:.2f} s)")
    base = wall["by hand"]
    print(
        f"envpack verify against podman by hand: {wall['envpack verify'] / base:.2f}x wall, "
        f"{cpu['envpack verify'] / cpu['by hand']:.2f}x CPU; vfs by hand "
        f"{wall['by hand, vfs'] / base:.2f}x"
    )
    print(
        f"storage after the pull: overlay {sizes['overlay'] / 1e6:.0f} MB, "
        f"vfs {sizes['vfs'] / 1e6:.0f} MB"
    )
    with open("/proc/loadavg") as loadavg:
        print(f"load average (1, 5, 15 min) at the end: {' '.join(loadavg.read().split()[:3])}")


if __name__ == "__main__":
    main()
