"""Benchmark: `envpack push` of the Flask image to a loopback registry against
`skopeo copy oci:… docker://…` of the same layout.

    python3 bench/bench_push.py [--repeat N] [--python PYTHON3.11]

The image is bench_build.py's: a CPython 3.11 virtualenv holding Flask, numpy,
psycopg2-binary and PyYAML, built once (untimed) as an OCI layout. Each round starts a
fresh Debian ``docker-registry`` on a free loopback port with empty storage, so neither
side finds a blob already there (nor can mount one), then times, in alternating order:

- ``envpack push LAYOUT HOST/bench/envpack:1`` against
  ``skopeo copy oci:LAYOUT:1 docker://HOST/bench/skopeo:1``: goal <= 1.0x;
- a second ``envpack push`` of the unchanged image to the same tag (every blob answered
  by a HEAD) against the first: goal <= 0.1x.

and, to tell the transfer from the start of a Python process, the same two pushes as
library calls in this process (``envpack.registry.push_layout``, to a third repository,
no mount record), and the floors any Python CLI has here: the interpreter envpack runs on
starting and doing nothing (``python -c pass``, its site-packages' ``.pth`` files
included); the least a Python program that checks a tag can do, importing an HTTP
client and sending the one ``HEAD`` of the manifest (with the standard library's
``http.client``, which envpack uses, and with ``urllib3``, the HTTP library the Docker SDK
brings); and ``envpack --version`` (the interpreter plus typer and envpack's CLI module).

Medians of wall and CPU time (the machine is shared: CPU time moves less with its load).
"""

from __future__ import annotations

import json
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from benchlib import flask_image_bench, time_run

from envpack.oci.media import OCI_MANIFEST
from envpack.registry import RegistryClient, RegistryRef, push_layout

GOAL_PUSH = 1.0
GOAL_SECOND = 0.1

# One HEAD of the pushed manifest and nothing else: the floor of any Python push that
# talks to the registry at all (argv: host, port, path, media type).
_ONE_HEAD_HTTP_CLIENT = """
import http.client, sys
connection = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]))
connection.request("HEAD", sys.argv[3], headers={"Accept": sys.argv[4]})
assert connection.getresponse().status == 200
"""
_ONE_HEAD_URLLIB3 = """
import sys, urllib3
pool = urllib3.HTTPConnectionPool(sys.argv[1], int(sys.argv[2]))
response = pool.request("HEAD", sys.argv[3], headers={"Accept": sys.argv[4]})
assert response.status == 200
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_registry(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A fresh docker-registry (no auth, empty storage) on loopback; its host:port."""
    folder.mkdir(parents=True)
    host = f"127.0.0.1:{_free_port()}"
    config = folder / "config.yml"
    config.write_text(
        "version: 0.1\nlog: {level: error, accesslog: {disabled: true}}\n"
        f"storage: {{filesystem: {{rootdirectory: {folder / 'data'}}}}}\n"
        f"http: {{addr: '{host}', secret: bench}}\n"
    )
    process = subprocess.Popen(
        ["docker-registry", "serve", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://{host}/v2/", timeout=2)
            return process, host
        except urllib.error.HTTPError:  # noqa: PERF203 - a readiness poll
            return process, host
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("bench: docker-registry did not start")


def _digest(ref: str) -> str:
    out = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", f"docker://{ref}"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return str(json.loads(out)["Digest"])


def _in_process(layout: Path, ref_text: str) -> tuple[float, float]:
    """Wall and CPU seconds (all threads) of one push as a library call."""
    ref = RegistryRef.parse(ref_text)
    client = RegistryClient.for_ref(ref)
    wall, cpu = time.perf_counter(), time.process_time()
    push_layout(client, ref.repository, ref.tag or "latest", layout, sources_folder=None)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    with flask_image_bench(
        __doc__.splitlines()[0],
        prefix="envpack-bench-push-",
        tools=("docker-registry", "skopeo"),
    ) as bench:
        repeat, env, envpack, scratch, layout = (
            bench.repeat, bench.env, bench.envpack, bench.scratch, bench.layout
        )  # fmt: skip
        blobs = sum(p.stat().st_size for p in (layout / "blobs" / "sha256").iterdir())
        envpack_runs: list[tuple[float, float]] = []
        skopeo_runs: list[tuple[float, float]] = []
        second_runs: list[tuple[float, float]] = []
        inproc_first: list[tuple[float, float]] = []
        inproc_second: list[tuple[float, float]] = []
        floors: dict[str, Runs] = {}
        interpreter = _interpreter(envpack)
        for round_number in range(repeat):
            process, host = _start_registry(scratch / f"registry-{round_number}")
            # No record of earlier pushes: every blob is sent, as skopeo sends it.
            shutil.rmtree(scratch / "cache" / "envpack" / "registry", ignore_errors=True)
            ours = [*envpack, "push", "-q", str(layout), f"{host}/bench/envpack:1"]
            theirs = ["skopeo", "copy", "-q", "--dest-tls-verify=false",
                      f"oci:{layout}:bench:1", f"docker://{host}/bench/skopeo:1"]  # fmt: skip
            try:
                if round_number % 2 == 0:
                    envpack_runs.append(time_run(ours, env))
                    skopeo_runs.append(time_run(theirs, env))
                else:
                    skopeo_runs.append(time_run(theirs, env))
                    envpack_runs.append(time_run(ours, env))
                second_runs.append(time_run(ours, env))
                for name, run in _floor_runs(interpreter, envpack, env, host).items():
                    floors.setdefault(name, []).append(run)
                inproc_first.append(_in_process(layout, f"{host}/bench/inproc:1"))
                inproc_second.append(_in_process(layout, f"{host}/bench/inproc:1"))
                if _digest(f"{host}/bench/envpack:1") != _digest(f"{host}/bench/skopeo:1"):
                    raise SystemExit("bench: envpack and skopeo pushed different images")
            finally:
                process.kill()
                process.wait()
                shutil.rmtree(scratch / f"registry-{round_number}", ignore_errors=True)

    _report(blobs, repeat, envpack_runs, skopeo_runs, second_runs, inproc_first, inproc_second)
    _report_floor(envpack_runs, floors)


Runs = list[tuple[float, float]]


def _floor_runs(
    interpreter: str, envpack: list[str], env: dict[str, str], host: str
) -> dict[str, tuple[float, float]]:
    """One run of each floor, in the order they are reported."""
    address, port = host.rsplit(":", 1)
    head = [address, port, "/v2/bench/envpack/manifests/1", OCI_MANIFEST]
    return {
        "python -c pass": time_run([interpreter, "-c", "pass"], env),
        "one HEAD with http.client": time_run(
            [interpreter, "-c", _ONE_HEAD_HTTP_CLIENT, *head], env
        ),
        "one HEAD with urllib3": time_run([interpreter, "-c", _ONE_HEAD_URLLIB3, *head], env),
        "envpack --version": time_run([*envpack, "--version"], env),
    }


def _interpreter(envpack: list[str]) -> str:
    """The Python the envpack command runs on (its script's ``#!`` line)."""
    if len(envpack) > 1:
        return envpack[0]
    with open(envpack[0], "rb") as script:
        first = script.readline()
    if first.startswith(b"#!") and b" " not in first.strip():
        return first[2:].strip().decode()
    return sys.executable


def _report_floor(envpack_runs: Runs, floors: dict[str, Runs]) -> None:
    first = statistics.median(run[0] for run in envpack_runs)
    for name, runs in floors.items():
        wall = statistics.median(run[0] for run in runs)
        cpu = statistics.median(run[1] for run in runs)
        print(f"floor: {name} {wall:.3f} s (CPU {cpu:.3f} s), {wall / first:.3f}x the first push")
    with open("/proc/loadavg") as loadavg:
        print(f"load average (1, 5, 15 min) at the end: {' '.join(loadavg.read().split()[:3])}")


def _report(
    blobs: int,
    repeat: int,
    envpack_runs: Runs,
    skopeo_runs: Runs,
    second_runs: Runs,
    inproc_first: Runs,
    inproc_second: Runs,
) -> None:
    def med(runs: list[tuple[float, float]], index: int) -> float:
        return statistics.median(run[index] for run in runs)

    wall_ours, wall_theirs, wall_second = (
        med(r, 0) for r in (envpack_runs, skopeo_runs, second_runs)
    )
    cpu_ours, cpu_theirs, cpu_second = (med(r, 1) for r in (envpack_runs, skopeo_runs, second_runs))
    pair_ratios = sorted(o[0] / t[0] for o, t in zip(envpack_runs, skopeo_runs))
    print(f"image: {blobs / 1e6:.1f} MB of blobs; {repeat} rounds, fresh registry each")
    print(
        f"push: envpack {wall_ours:.2f} s (CPU {cpu_ours:.2f} s); skopeo copy {wall_theirs:.2f} s "
        f"(CPU {cpu_theirs:.2f} s); ratio {wall_ours / wall_theirs:.2f}x wall "
        f"(pairs {pair_ratios[0]:.2f}-{pair_ratios[-1]:.2f}x), {cpu_ours / cpu_theirs:.2f}x CPU "
        f"(goal <= {GOAL_PUSH}x)"
    )
    print(
        f"second push of the unchanged image: {wall_second:.2f} s (CPU {cpu_second:.2f} s); "
        f"{wall_second / wall_ours:.3f}x the first (goal <= {GOAL_SECOND}x)"
    )
    in_first, in_second = med(inproc_first, 0), med(inproc_second, 0)
    print(
        f"in-process (no interpreter start): push {in_first:.2f} s (CPU "
        f"{med(inproc_first, 1):.2f} s), {in_first / wall_theirs:.2f}x skopeo copy; second push "
        f"{in_second:.3f} s (CPU {med(inproc_second, 1):.3f} s), {in_second / in_first:.3f}x"
    )


if __name__ == "__main__":
    main()
