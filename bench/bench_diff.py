"""Benchmark: `envpack diff` of two 100,000-package manifests vs `json.load` of both.

Goal (issue 4): diff wall time <= 2x json.load of both files, peak memory <= 3x their size.

Run: python3 bench/bench_diff.py [--packages N] [--repeat R]

Prints the medians of R runs (default 5) of:
  * json.load of both files, in this process (what a user's own script would do first);
  * the diff in this process: load both manifests, compare, render the json report;
  * the CLI end to end (`python -m envpack diff A B --format json -o OUT`, a child process)
    next to a child process that only runs json.load of both (same interpreter start-up);
and the peak memory of child processes running the in-process diff or json.load of both:
the growth of the peak RSS (VmHWM) over a child that imported the same modules and did
nothing, and tracemalloc's peak (Python allocations only).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchlib import median_call

from envpack.manifest import Manifest, Meta, dumps


def component(index: int, version: str) -> dict[str, Any]:
    """A python_packages entry shaped like a real capture's."""
    name = f"package-{index:06d}"
    return {
        "name": name,
        "version": version,
        "interpreter": "/srv/app/venv/bin/python",
        "location": "/srv/app/venv/lib/python3.11/site-packages",
        "metadata_dir": f"{name.replace('-', '_')}-{version}.dist-info",
        "kind": "dist-info",
        "installer": "pip",
        "requires": [f"package-{(index * 7) % 100000:06d}>=1.0"],
        "requires_python": ">=3.8",
        "direct_url": None,
        "editable": False,
        "top_level": [name.replace("-", "_")],
        "files": 12,
        "size": 40960 + index,
        "shadowed": [],
    }


def write_pair(folder: Path, packages: int) -> tuple[Path, Path]:
    rng = random.Random(4)  # noqa: S311 - a fixed seed picks the same changed 1% every run
    base: dict[str, Any] = {}
    other: dict[str, Any] = {}
    changed = set(rng.sample(range(packages), packages // 100))
    for i in range(packages):
        version = f"{1 + i % 7}.{i % 13}.{i % 5}"
        base[f"package-{i:06d}"] = component(i, version)
        new = f"{2 + i % 7}.0.0" if i in changed else version
        other[f"package-{i:06d}"] = component(i, new)
    paths = []
    for label, section in (("dev", base), ("prod", other)):
        meta = Meta("0.1.0", "2026-01-01T00:00:00Z", "live", label, label, label)
        path = folder / f"{label}.json"
        path.write_text(dumps(Manifest(meta, {"python_packages": section})), encoding="utf-8")
        paths.append(path)
    return paths[0], paths[1]


def json_load_both(a: Path, b: Path) -> None:
    with a.open("rb") as fa:
        json.load(fa)
    with b.open("rb") as fb:
        json.load(fb)


def diff_in_process(a: Path, b: Path) -> int:
    from envpack.diff.engine import load_environments, run_diff, single_run
    from envpack.diff.reporters import get_reporter

    with single_run():  # exactly what `envpack diff` does
        result = run_diff(load_environments([str(a), str(b)])).result
        text = get_reporter("json").render(result)
    assert len(result.drifts[0].changes) > 0 and text
    return result.verdict.exit_code


CHILD = """
import json, sys, tracemalloc
from pathlib import Path
sys.path.insert(0, {bench!r})
from bench_diff import diff_in_process, json_load_both
import envpack.diff.engine, envpack.diff.reporters.json_report  # imported in every mode


def high_water_kib():
    # VmHWM is this process's own peak RSS; ru_maxrss would include the parent's peak,
    # which Linux carries over a fork and exec.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])


mode, traced, a, b = sys.argv[1], sys.argv[2] == "traced", Path(sys.argv[3]), Path(sys.argv[4])
if traced:
    tracemalloc.start()
if mode == "diff":
    diff_in_process(a, b)
elif mode == "json":
    json_load_both(a, b)
peak = tracemalloc.get_traced_memory()[1] if traced else 0
print(json.dumps({{"hwm_kib": high_water_kib(), "traced_peak": peak}}))
"""


def child(mode: str, traced: bool, a: Path, b: Path) -> dict[str, int]:
    code = CHILD.format(bench=str(Path(__file__).parent))
    done = subprocess.run(
        [sys.executable, "-c", code, mode, "traced" if traced else "plain", str(a), str(b)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    data: dict[str, int] = json.loads(done.stdout)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--packages", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="envpack-bench-") as tmp:
        folder = Path(tmp)
        a, b = write_pair(folder, args.packages)
        size = a.stat().st_size + b.stat().st_size
        print(f"{args.packages} packages per manifest, 1% changed; files {size / 1e6:.1f} MB total")

        t_json = median_call(lambda: json_load_both(a, b), args.repeat)[0]
        t_diff = median_call(lambda: diff_in_process(a, b), args.repeat)[0]
        print(f"json.load both (in-process)      median {t_json * 1000:8.1f} ms")
        print(f"envpack diff (in-process, json)  median {t_diff * 1000:8.1f} ms")
        print(f"  ratio diff / json.load: {t_diff / t_json:.2f}x  (goal <= 2x)")

        out = folder / "report.json"
        cli = [sys.executable, "-m", "envpack", "diff", str(a), str(b), "--format", "json"]
        cli += ["-o", str(out)]
        script = "import json,sys\nfor p in sys.argv[1:]:\n    json.load(open(p,'rb'))"
        loader = [sys.executable, "-c", script, str(a), str(b)]
        t_cli = median_call(lambda: subprocess.run(cli, check=False), args.repeat)[0]
        t_loader = median_call(lambda: subprocess.run(loader, check=True), args.repeat)[0]
        print(f"`envpack diff` CLI (child)       median {t_cli * 1000:8.1f} ms")
        print(f"`python -c json.load` (child)    median {t_loader * 1000:8.1f} ms")
        print(f"  ratio CLI / child json.load: {t_cli / t_loader:.2f}x")

        idle = child("idle", False, a, b)["hwm_kib"] * 1024
        for mode, what in (("json", "json.load of both"), ("diff", "envpack diff")):
            grown = child(mode, False, a, b)["hwm_kib"] * 1024 - idle
            traced = child(mode, True, a, b)["traced_peak"]
            print(
                f"{what:<33}peak RSS growth {grown / 1e6:7.1f} MB = {grown / size:.2f}x the "
                f"files; tracemalloc peak {traced / 1e6:7.1f} MB = {traced / size:.2f}x"
            )
        print("  goal: diff peak memory <= 3x the two files' size")


if __name__ == "__main__":
    main()
