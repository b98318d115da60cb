"""Benchmark: `envpack capture --image` against extracting the same layers with `tar -x`.

Goal (issue 11): a capture of an image of about 300 MB costs no more than extracting its
layers with GNU tar (ratio ≤ 1.0), and its peak memory does not grow with the image.

Run: python3 bench/bench_image_capture.py [--sizes 300,600] [--repeat R] [--layers N]

For each size an image is assembled from this machine's own files (os-release, the dpkg
status, then /usr/lib/python3.11, /usr/bin, /usr/lib/x86_64-linux-gnu, /usr/share … until
the size is reached), split into N layers (default 4), and written twice:

- as a ``docker save`` tar (uncompressed layers, Docker 20.10's format), against
  ``tar -x -f layer.tar`` of each layer in turn (the layers taken out of the archive
  beforehand, untimed);
- as an OCI layout with gzip layers (``gzip -6``), against ``tar -xzf`` of each blob.

A third line runs what a user would otherwise do to get the manifest: ``tar -x`` of the
layers, then ``envpack capture --root`` of the tree. Each command runs in a child process,
interleaved with the others, R times (default 3). Printed: medians of wall and CPU seconds
(user + sys, children included), the ratios, and peak RSS (from ``wait4``, per child).
The machine is shared; CPU seconds are the steadier figure. The hash cache plays no part:
an image capture does not use it, and the ``--root`` runs pass ``--no-cache`` (a freshly
extracted tree has nothing cached anyway).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from benchlib import child_env, envpack_command

MIB = 1 << 20
SOURCES = (
    "/usr/lib/python3.11",
    "/usr/bin",
    "/usr/lib/x86_64-linux-gnu",
    "/usr/share",
    "/usr/lib/python3",
)
BASE = ("/etc/os-release", "/etc/debian_version", "/etc/passwd", "/etc/group")


def pick_files(budget: int) -> list[str]:
    """Host files, in a stable order, until their sizes add up to ``budget`` bytes."""
    picked: list[str] = []
    total = 0
    for top in SOURCES:
        for folder, dirs, files in os.walk(top):
            dirs.sort()
            for name in sorted(files):
                path = os.path.join(folder, name)
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                if not (os.path.islink(path) or os.path.isfile(path)):
                    continue
                if not os.access(path, os.R_OK):
                    continue
                picked.append(path)
                total += st.st_size if not os.path.islink(path) else 0
                if total >= budget:
                    return picked
    return picked


def write_layers(files: list[str], count: int, out: Path) -> list[Path]:
    """``count`` uncompressed layer tars: a base (os-release, dpkg status), then the files."""
    out.mkdir(parents=True)
    layers = []
    base = out / "layer-0.tar"
    with tarfile.open(base, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in BASE:
            if os.path.exists(path):
                tar.add(path, arcname=path.lstrip("/"))
        tar.add("/var/lib/dpkg/status", arcname="var/lib/dpkg/status")
        for link, target in (("bin", "usr/bin"), ("lib", "usr/lib"), ("sbin", "usr/sbin")):
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    layers.append(base)
    per = (len(files) + count - 1) // count
    for number in range(count):
        layer = out / f"layer-{number + 1}.tar"
        with tarfile.open(layer, "w", format=tarfile.PAX_FORMAT) as tar:
            for path in files[number * per : (number + 1) * per]:
                tar.add(path, arcname=path.lstrip("/"), recursive=False)
        layers.append(layer)
    return layers


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def config_bytes(diff_ids: list[str]) -> bytes:
    return json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    ).encode()


def write_docker_archive(layers: list[Path], target: Path) -> None:
    diff_ids = [f"sha256:{sha256_file(layer)}" for layer in layers]
    config = config_bytes(diff_ids)
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    names = [f"{d[7:]}/layer.tar" for d in diff_ids]
    manifest = json.dumps([{"Config": config_name, "RepoTags": ["bench:1"], "Layers": names}])
    with tarfile.open(target, "w") as tar:
        for name, data in ((config_name, config), ("manifest.json", manifest.encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, __import__("io").BytesIO(data))
        for layer, name in zip(layers, names):
            tar.add(str(layer), arcname=name)


def write_oci_layout(layers: list[Path], target: Path) -> list[Path]:
    """An OCI layout with ``gzip -6`` layers; returns the layer blobs, bottom first."""
    blobs = target / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    procs = [subprocess.Popen(["gzip", "-6", "-k", "-f", "-n", str(p)]) for p in layers]
    for proc in procs:
        proc.wait()
    descriptors, paths, diff_ids = [], [], []
    for layer in layers:
        gz = Path(f"{layer}.gz")
        digest = sha256_file(gz)
        blob = blobs / digest
        shutil.move(gz, blob)
        paths.append(blob)
        diff_ids.append(f"sha256:{sha256_file(layer)}")
        descriptors.append(
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": f"sha256:{digest}",
                "size": blob.stat().st_size,
            }
        )

    def put(data: bytes) -> dict[str, object]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}

    config = put(config_bytes(diff_ids))
    manifest = put(
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
                "layers": descriptors,
            }
        ).encode()
    )
    index = {"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", **manifest}
    ]}  # fmt: skip
    (target / "index.json").write_text(json.dumps(index))
    (target / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return paths


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MiB) of one child, from its own ``wait4``."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({proc.returncode})")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def compare(
    label: str, ours: list[str], tar_script: str, root_capture: str, dest: Path, repeat: int,
    env: dict[str, str],
) -> None:  # fmt: skip
    """envpack --image, tar -x alone, and tar -x followed by envpack --root, interleaved."""
    runs: dict[str, list[tuple[float, float, float]]] = {"ours": [], "tar": [], "both": []}
    for _ in range(repeat):
        runs["ours"].append(run(ours, env))
        for name, script in (("tar", tar_script), ("both", f"{tar_script} && {root_capture}")):
            dest.mkdir()
            runs[name].append(run(["sh", "-c", script], env))
            shutil.rmtree(dest)
    wall = {k: statistics.median(r[0] for r in v) for k, v in runs.items()}
    cpu = {k: statistics.median(r[1] for r in v) for k, v in runs.items()}
    rss = {k: max(r[2] for r in v) for k, v in runs.items()}
    print(
        f"  {label}\n"
        f"    envpack capture --image       {wall['ours']:6.2f} s wall {cpu['ours']:6.2f} s CPU "
        f"{rss['ours']:6.1f} MiB peak RSS\n"
        f"    tar -x (layers in order)      {wall['tar']:6.2f} s wall {cpu['tar']:6.2f} s CPU\n"
        f"    tar -x, then capture --root   {wall['both']:6.2f} s wall {cpu['both']:6.2f} s CPU "
        f"{rss['both']:6.1f} MiB peak RSS\n"
        f"    ratio to tar -x: wall {wall['ours'] / wall['tar']:.2f}, CPU "
        f"{cpu['ours'] / cpu['tar']:.2f}; to tar -x + capture --root: wall "
        f"{wall['ours'] / wall['both']:.2f}, CPU {cpu['ours'] / cpu['both']:.2f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="300,600", help="image sizes in MB (default 300,600)")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    env = child_env()
    envpack = envpack_command()
    with tempfile.TemporaryDirectory(prefix="bench-image-") as temp_name:
        temp = Path(temp_name)
        env["TMPDIR"] = str(temp)
        for size in (int(s) for s in args.sizes.split(",")):
            work = temp / f"{size}"
            files = pick_files(size * 1000 * 1000)
            layers = write_layers(files, args.layers, work / "layers")
            total = sum(p.stat().st_size for p in layers)
            archive = work / "image.tar"
            write_docker_archive(layers, archive)
            blobs = write_oci_layout(layers, work / "image.oci")
            gz = sum(p.stat().st_size for p in blobs)
            print(
                f"image of {len(files)} files in {len(layers)} layers: {total / MIB:.0f} MiB "
                f"of tar, {gz / MIB:.0f} MiB gzipped",
                flush=True,
            )
            dest = work / "dest"
            plain = " && ".join(f"tar -x -f {p} -C {dest}" for p in layers)
            gzipped = " && ".join(f"tar -xz -f {p} -C {dest}" for p in blobs)
            capture = [*envpack, "capture", "-q", "--image"]
            root = " ".join(
                [*envpack, "capture", "-q", "--no-cache", "--root", str(dest), "-o", "/dev/null"]
            )
            compare(
                "docker save tar (plain layers)",
                [*capture, f"docker-archive:{archive}"], plain, root, dest, args.repeat, env,
            )  # fmt: skip
            compare(
                "OCI layout (gzip layers)",
                [*capture, f"oci:{work / 'image.oci'}"], gzipped, root, dest, args.repeat, env,
            )  # fmt: skip
            shutil.rmtree(work)


if __name__ == "__main__":
    main()
