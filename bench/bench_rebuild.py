"""Benchmark: an unchanged rebuild of the Flask image against its cold build (layer cache).

    python3 bench/bench_rebuild.py [--repeat N] [--python PYTHON3.11]

The image is the one bench_build.py and the real-Docker tests build: a CPython 3.11
virtualenv with Flask, numpy, psycopg2-binary and PyYAML (cached in bench/.venvs/), plus
the fixture Flask app. In the same run, interleaved, medians of wall and CPU seconds:

- **cold**: ``envpack build`` with an empty cache folder (``ENVPACK_CACHE_DIR``): every
  file hashed, every ``.pyc`` compiled, every layer tarred and compressed;
- **unchanged**: the same build again with the cache the cold one left: goal <= 0.1x cold
  (the whole build from the build cache: stat keys checked, nothing planned);
- **app changed**: one line of the app edited before the build: planned again, one layer
  rebuilt.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from benchlib import (
    child_env,
    envpack_command,
    flask_venv,
    medians,
    time_run,
)

GOAL = 0.1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side (min 3)")
    parser.add_argument("--python", help="base CPython 3.11 for the venv")
    args = parser.parse_args()
    repeat = max(3, args.repeat)
    python = flask_venv(args.python)
    env = child_env()
    envpack = envpack_command()
    fixture = Path(__file__).resolve().parent.parent / "fixtures" / "build_app"
    with tempfile.TemporaryDirectory(prefix="envpack-bench-rebuild-") as scratch_name:
        scratch = Path(scratch_name)
        app = scratch / "app"
        shutil.copytree(fixture, app, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        manifest = scratch / "flask.json"
        subprocess.run(
            [*envpack, "capture", "-q", "--python", str(python), "-o", str(manifest)],
            env=env, check=True,
        )  # fmt: skip
        cache = scratch / "cache"
        report = scratch / "report.json"

        def build(cache_dir: Path) -> tuple[float, float]:
            return time_run(
                [*envpack, "build", str(manifest), "-q", "--force", "-o",
                 str(scratch / "image.oci"), "--app", f"{app}:/srv/app",
                 "--report", str(report)],
                {**env, "ENVPACK_CACHE_DIR": str(cache_dir)},
            )  # fmt: skip

        def cached_layers() -> tuple[int, int, bool]:
            data = json.loads(report.read_text())
            layers = data["layers"]
            return sum(layer["cached"] for layer in layers), len(layers), data["build_cached"]

        build(scratch / "warmup")  # the page cache warm for every side
        cold: list[tuple[float, float]] = []
        unchanged: list[tuple[float, float]] = []
        changed: list[tuple[float, float]] = []
        counts: dict[str, tuple[int, int, bool]] = {}
        for run in range(repeat):
            shutil.rmtree(cache, ignore_errors=True)
            cold.append(build(cache))
            counts["cold"] = cached_layers()
            unchanged.append(build(cache))
            counts["unchanged"] = cached_layers()
            app_py = app / "app.py"
            app_py.write_text(app_py.read_text() + f"\n# edit {run}\n")
            changed.append(build(cache))
            counts["app changed"] = cached_layers()

    cold_wall, cold_cpu = medians(cold)
    print(
        f"Flask image, {repeat} runs each, medians (wall s / CPU s), layers from the cache, "
        "whole build from the cache"
    )
    for name, runs in (("cold", cold), ("unchanged", unchanged), ("app changed", changed)):
        wall, cpu = medians(runs)
        hit, total, whole = counts[name]
        how = "cached" if whole else "planned"
        print(
            f"  {name:<12} {wall:7.2f} s  {cpu:7.2f} s CPU   {wall / cold_wall:5.3f}x wall  "
            f"{cpu / cold_cpu:5.3f}x CPU   layers cached {hit}/{total}   build {how}"
        )
    ratio = medians(unchanged)[0] / cold_wall
    verdict = "met" if ratio <= GOAL else "MISSED"
    print(f"unchanged rebuild / cold build: {ratio:.3f}x wall (goal <= {GOAL}x): {verdict}")


if __name__ == "__main__":
    main()
