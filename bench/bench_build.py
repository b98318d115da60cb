"""Benchmark: a cold `envpack build` of the Flask image against `tar -czf` of the same files.

    python3 bench/bench_build.py [--repeat N] [--python PYTHON3.11]

The image is the one the real-Docker tests run: a CPython 3.11 virtualenv holding Flask
and the C extensions numpy, psycopg2-binary and PyYAML (cached in bench/.venvs/). In the
same run, interleaved, medians:

- wall time of ``envpack build --no-cache`` (an empty cache folder each run: every packed
  file the manifest records a hash for is hashed for the drift check, every ``.pyc`` is
  made again, from the interpreter's own valid bytecode where the venv has it, else
  compiled) against GNU ``tar -czf`` of exactly the files the image holds (the generated
  ones, ``.pyc`` included, written out beforehand, untimed): goal <= 0.5x, with the
  compressed layers <= 1.15x the size of tar's archive. The CPU time of both is printed
  too: on this shared 2-core machine the wall ratio moves with the load, CPU much less;
- the image size (uncompressed layers) against a naive copy: the interpreter prefix
  without its own site-packages, plus the virtualenv: goal <= 0.6x;
- peak memory (max RSS) of the build for two image sizes: the Flask image, and the same
  with a big folder added with ``--include``; it must stay flat.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchlib import child_env, envpack_command, flask_venv

from envpack.manifest import load_manifest
from envpack.pack.plan import PlanOptions, plan_image
from envpack.snapshot.source import Source

GOAL_WALL = 0.5
GOAL_COMPRESSED = 1.15
GOAL_SIZE = 0.6
# Added with --include for the bigger image of the memory comparison: a few hundred MB of
# real files that every Debian machine has.
BIG_FOLDER = "/usr/lib/x86_64-linux-gnu"


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, int, float]:
    """Wall seconds, peak RSS (bytes) and CPU seconds (user + system, with the processes
    it waited for: envpack's bytecode workers, tar's gzip) of one child process."""
    start = time.perf_counter()
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    stderr = child.stderr.read().decode() if child.stderr is not None else ""
    if child.stderr is not None:
        child.stderr.close()
    if child.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed ({child.returncode}): {stderr}")
    return wall, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime


def _tree_size(root: Path, skip: Path | None = None) -> int:
    total = 0
    for folder, dirs, files in os.walk(root):
        if skip is not None and Path(folder) == skip.parent:
            dirs[:] = [d for d in dirs if Path(folder, d) != skip]
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                total += os.lstat(path).st_size
    return total


def _tar_inputs(manifest: Path, scratch: Path, app: tuple[str, str]) -> Path:
    """A file list for GNU tar holding what the image holds (generated files written out)."""
    plan = plan_image(
        load_manifest(manifest), Source.live(), PlanOptions(apps=(app,), use_cache=False)
    )
    generated = scratch / "generated"
    lines: list[str] = []
    for planned in plan.files:
        entry = planned.entry
        if entry.kind != "file":
            continue
        if planned.source_path is not None and os.path.isfile(planned.source_path):
            lines.append(planned.source_path)
            continue
        if entry.open is None:
            continue
        target = generated / entry.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        with entry.open() as stream, target.open("wb") as out:
            shutil.copyfileobj(stream, out)
        lines.append(str(target))
    listing = scratch / "files.txt"
    listing.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return listing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs of each side (min 3)")
    parser.add_argument("--python", help="base CPython 3.11 for the venv")
    args = parser.parse_args()
    repeat = max(3, args.repeat)
    python = flask_venv(args.python)
    env = child_env()
    envpack = envpack_command()
    app_dir = Path(__file__).resolve().parent.parent / "fixtures" / "build_app"
    app = (str(app_dir), "/srv/app")
    with tempfile.TemporaryDirectory(prefix="envpack-bench-build-") as scratch_name:
        scratch = Path(scratch_name)
        manifest = scratch / "flask.json"
        subprocess.run(
            [*envpack, "capture", "-q", "--python", str(python), "-o", str(manifest)],
            env=env, check=True,
        )  # fmt: skip
        listing = _tar_inputs(manifest, scratch, app)
        out = scratch / "image.oci"
        report = scratch / "report.json"
        tgz = scratch / "files.tgz"

        def build(extra: list[str], target: Path = out) -> tuple[float, int, float]:
            cache = scratch / "cache"
            shutil.rmtree(cache, ignore_errors=True)
            run_env = {**env, "XDG_CACHE_HOME": str(cache)}
            return _run(
                [*envpack, "build", str(manifest), "-q", "--no-cache", "--force", "-o",
                 str(target), "--app", f"{app[0]}:{app[1]}", "--report", str(report), *extra],
                run_env,
            )  # fmt: skip

        tar_cmd = ["tar", "-czf", str(tgz), "-P", "--no-recursion", "-T", str(listing)]
        build([])  # warm the page cache for both sides
        _run(tar_cmd, env)
        builds: list[tuple[float, int, float]] = []
        tars: list[tuple[float, int, float]] = []
        for _ in range(repeat):
            builds.append(build([]))
            tars.append(_run(tar_cmd, env))
        data = json.loads(report.read_text())
        compressed = sum(layer["size"] for layer in data["layers"])
        uncompressed = sum(layer["uncompressed_size"] for layer in data["layers"])
        tgz_size = tgz.stat().st_size
        files = len(listing.read_text().splitlines())

        prefixes = "import sys, json; print(json.dumps([sys.prefix, sys.base_prefix]))"
        info = json.loads(
            subprocess.run(
                [str(python), "-c", prefixes], capture_output=True, text=True, check=True
            ).stdout
        )
        prefix, base = Path(info[0]), Path(info[1])
        site = base / "lib" / "python3.11" / "site-packages"
        naive = _tree_size(base, skip=site) + _tree_size(prefix)

        small_rss = statistics.median(build([])[1] for _ in range(3))
        big_rss = statistics.median(build(["--include", BIG_FOLDER])[1] for _ in range(3))
        big = json.loads(report.read_text())
        big_size = sum(layer["uncompressed_size"] for layer in big["layers"])

    print(f"image: {files} files, {uncompressed / 1e6:.0f} MB in {len(data['layers'])} layers")
    _print_times(builds, tars)
    print(
        f"compressed: layers {compressed / 1e6:.1f} MB, tar -czf {tgz_size / 1e6:.1f} MB; "
        f"ratio {compressed / tgz_size:.2f}x (goal <= {GOAL_COMPRESSED}x)"
    )
    print(
        f"image size: {uncompressed / 1e6:.0f} MB; naive copy (prefix without site-packages "
        f"+ venv) {naive / 1e6:.0f} MB; ratio {uncompressed / naive:.2f}x (goal <= {GOAL_SIZE}x)"
    )
    print(
        f"peak memory: {small_rss / 1e6:.0f} MB for {uncompressed / 1e6:.0f} MB of image, "
        f"{big_rss / 1e6:.0f} MB for {big_size / 1e6:.0f} MB (+{BIG_FOLDER})"
    )


def _print_times(
    builds: list[tuple[float, int, float]], tars: list[tuple[float, int, float]]
) -> None:
    wall_build = statistics.median(run[0] for run in builds)
    wall_tar = statistics.median(run[0] for run in tars)
    ratios = sorted(b[0] / t[0] for b, t in zip(builds, tars))
    cpu_build = statistics.median(run[2] for run in builds)
    cpu_tar = statistics.median(run[2] for run in tars)
    load = os.getloadavg()[0]
    print(f"{len(builds)} interleaved runs each, medians; load average at the end {load:.1f}")
    print(
        f"cold build (--no-cache): {wall_build:.2f} s; tar -czf of the same files: "
        f"{wall_tar:.2f} s; ratio {wall_build / wall_tar:.2f}x (goal <= {GOAL_WALL}x; "
        f"per pair {ratios[0]:.2f}-{ratios[-1]:.2f}x)"
    )
    print(
        f"CPU (user + system): build {cpu_build:.2f} s, tar -czf {cpu_tar:.2f} s; "
        f"ratio {cpu_build / cpu_tar:.2f}x"
    )


if __name__ == "__main__":
    main()
