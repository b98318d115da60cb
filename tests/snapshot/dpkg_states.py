"""A rootfs whose dpkg database real ``dpkg --root`` left with packages in every state.

The packages are built with ``dpkg-deb --build`` and installed with the machine's dpkg,
so ``var/lib/dpkg/status``, ``info/*.list`` and the trigger files are dpkg's own. Maintainer
scripts run without a chroot (``--force-script-chrootless``): the tree has no shell.

States reached (package → state):

* ``ep-plain`` → installed
* ``ep-unpacked`` → unpacked (``--unpack``, never configured)
* ``ep-halfconf`` → half-configured (its postinst fails while ``etc/ep-fail`` exists)
* ``ep-trigwatch`` → triggers-pending (interested in ``/usr/share/ep-trig``, triggers deferred)
* ``ep-trigger`` → triggers-awaited (ships a file there, installed with ``--no-triggers``)
* ``ep-gone`` → config-files (removed, its conffile left): not on disk, must not be recorded

:func:`finish` then configures everything and runs the triggers, as apt would at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

__all__ = ["STATES", "build_deb", "dpkg_available", "finish", "make_root", "run_dpkg"]

STATES = {
    "ep-plain": "installed",
    "ep-unpacked": "unpacked",
    "ep-halfconf": "half-configured",
    "ep-trigwatch": "triggers-pending",
    "ep-trigger": "triggers-awaited",
    "ep-gone": "config-files",
}


def dpkg_available() -> bool:
    return shutil.which("dpkg") is not None and shutil.which("dpkg-deb") is not None


def build_deb(work: Path, name: str, files: dict[str, str], **control: str) -> Path:
    tree = work / name
    (tree / "DEBIAN").mkdir(parents=True)
    fields = {
        "Package": name,
        "Version": "1.0-1",
        "Architecture": "all",
        "Maintainer": "envpack tests <tests@example.invalid>",
        "Description": f"envpack test package {name}",
    }
    meta = {k: v for k, v in control.items() if k in ("postinst", "triggers", "conffiles")}
    fields.update({k: v for k, v in control.items() if k not in meta})
    (tree / "DEBIAN" / "control").write_text("".join(f"{k}: {v}\n" for k, v in fields.items()))
    for script, text in meta.items():
        path = tree / "DEBIAN" / script
        path.write_text(text)
        if script == "postinst":
            path.chmod(0o755)
    for inner, text in files.items():
        path = tree / inner.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    out = work / f"{name}.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(out)],
        check=True,
        capture_output=True,
    )
    return out


def run_dpkg(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    command = [
        "dpkg",
        f"--root={root}",
        "--force-script-chrootless",
        "--force-not-root",
        "--log=/dev/null",
        *args,
    ]
    env = {**os.environ, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)}: {result.stderr}")
    return result


def make_root(work: Path) -> Path:
    """The rootfs (``work/root``) with each package of :data:`STATES` in its state."""
    root = work / "root"
    admin = root / "var/lib/dpkg"
    for sub in ("info", "updates", "triggers"):
        (admin / sub).mkdir(parents=True)
    (admin / "status").write_text("")
    (admin / "available").write_text("")
    (root / "etc").mkdir()
    (root / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    debs = work / "debs"
    debs.mkdir()
    fail = '#!/bin/sh\nif [ -e "$DPKG_ROOT/etc/ep-fail" ]; then exit 1; fi\nexit 0\n'
    plain = build_deb(debs, "ep-plain", {"/usr/share/ep-plain/README": "plain\n"})
    unpacked = build_deb(debs, "ep-unpacked", {"/usr/share/ep-unpacked/README": "u\n"})
    halfconf = build_deb(
        debs, "ep-halfconf", {"/usr/share/ep-halfconf/README": "h\n"}, postinst=fail
    )
    watch = build_deb(
        debs,
        "ep-trigwatch",
        {"/usr/share/ep-trigwatch/README": "w\n"},
        triggers="interest /usr/share/ep-trig\n",
        postinst="#!/bin/sh\nexit 0\n",
    )
    trigger = build_deb(debs, "ep-trigger", {"/usr/share/ep-trig/data": "t\n"})
    gone = build_deb(
        debs, "ep-gone", {"/etc/ep-gone.conf": "k = v\n"}, conffiles="/etc/ep-gone.conf\n"
    )
    run_dpkg(root, "--install", str(plain), str(watch), str(gone))
    run_dpkg(root, "--remove", "ep-gone")
    run_dpkg(root, "--unpack", str(unpacked))
    (root / "etc/ep-fail").write_text("")
    failed = run_dpkg(root, "--install", str(halfconf), check=False)
    assert failed.returncode != 0, "the failing postinst should have failed"
    run_dpkg(root, "--no-triggers", "--install", str(trigger))
    return root


def finish(root: Path) -> None:
    """What apt does at the end of a run: configure what is pending, run the triggers."""
    (root / "etc/ep-fail").unlink()
    run_dpkg(root, "--configure", "--pending")
    run_dpkg(root, "--triggers-only", "--pending")
    run_dpkg(root, "--configure", "--pending")
