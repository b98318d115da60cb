"""Benchmark: envpack's system_packages probe against `dpkg-query -W`, and against
python-debian's deb822 parser on the same status file.

    python3 bench/bench_system_packages.py [--repeat 15]

Reads this machine's real dpkg database. Prints the median wall time of each and the ratios.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess

from benchlib import median_call

from envpack.redact import Redactor
from envpack.snapshot import system_packages
from envpack.snapshot.context import CaptureContext, CaptureOptions
from envpack.snapshot.source import Source


def _envpack() -> int:
    ctx = CaptureContext(Source.live({}), CaptureOptions(), Redactor(b"bench"))
    system_packages.probe(ctx)
    return len(ctx.sections["system_packages"])


def _dpkg_query() -> int:
    fmt = "${db:Status-Status} ${Package}:${Architecture} ${Version} ${source:Package}\\n"
    out = subprocess.run(
        ["dpkg-query", "-W", "-f", fmt], capture_output=True, text=True, check=True
    ).stdout
    return sum(1 for line in out.splitlines() if line.startswith("installed "))


def _python_debian() -> int:
    from debian.deb822 import Deb822

    count = 0
    with open("/var/lib/dpkg/status", encoding="utf-8") as stream:
        for paragraph in Deb822.iter_paragraphs(stream, use_apt_pkg=False):
            if paragraph.get("Status", "").endswith(" ok installed"):
                count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    if shutil.which("dpkg-query") is None:
        raise SystemExit("needs a dpkg-based machine")
    ours, n_ours = median_call(_envpack, args.repeat)
    theirs, n_theirs = median_call(_dpkg_query, args.repeat)
    print(f"envpack system_packages probe: {ours * 1000:8.1f} ms  ({n_ours} packages)")
    print(f"dpkg-query -W:                 {theirs * 1000:8.1f} ms  ({n_theirs} packages)")
    print(f"ratio envpack / dpkg-query:    {ours / theirs:8.2f}")
    try:
        deb822, n_deb = median_call(_python_debian, args.repeat)
    except ImportError:
        print("python-debian not installed: deb822 comparison skipped")
        return
    print(f"python-debian Deb822:          {deb822 * 1000:8.1f} ms  ({n_deb} packages)")
    print(f"ratio python-debian / envpack: {deb822 / ours:8.2f}")


if __name__ == "__main__":
    main()
