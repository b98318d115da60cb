"""The python_packages probe against real virtualenvs, checked against pip's own view."""

from __future__ import annotations

import csv
import email.parser
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from envpack.manifest import schema_text
from envpack.redact import Redactor
from envpack.snapshot import hashcache, python_packages
from envpack.snapshot.capture import capture
from envpack.snapshot.context import CaptureContext, CaptureOptions
from envpack.snapshot.distributions import canonical_name
from envpack.snapshot.source import Source
from realenv import FIXTURES, make_venv, pyenv_python, run_envpack

# Metadata pip's `list` hides on purpose (pip's stdlib_pkgs) but which really sits on a
# CPython 2.7 sys.path (lib-dynload/Python-2.7.18-py2.7.egg-info, lib/wsgiref.egg-info).
PIP_HIDDEN = {"python", "wsgiref", "argparse"}
"""Names pip never lists: the metadata Python 2.7 ships in its standard library."""


def _capture(
    python: Path, tmp_path: Path, env: dict[str, str], *extra: str, name: str = "out.json"
) -> dict[str, Any]:
    out = tmp_path / name
    result = run_envpack(
        "capture", "--python", str(python), "--only", "interpreters",
        "--only", "python_packages", "-q", "-o", str(out), *extra, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(out.read_text("utf-8"))
    jsonschema.validate(data, json.loads(schema_text()))
    return data


def _versions(manifest: dict[str, Any]) -> dict[str, str]:
    return {key: c["version"] for key, c in manifest["python_packages"].items()}


def _pip_list(python: Path, env: dict[str, str], *, own_pip: bool) -> dict[str, str]:
    """What pip says is installed: the venv's own pip, or this Python's pip via --python."""
    cmd = (
        [str(python), "-m", "pip"]
        if own_pip
        else [sys.executable, "-m", "pip", "--python", str(python)]
    )
    result = subprocess.run(
        [*cmd, "list", "--format=json", "--disable-pip-version-check"],
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    return {canonical_name(d["name"]): d["version"] for d in json.loads(result.stdout)}


def _site_packages(manifest: dict[str, Any]) -> str:
    [interpreter] = manifest["interpreters"].values()
    # The venv's own site-packages; other sys.path folders may hold metadata too (2.7's
    # stdlib holds wsgiref.egg-info).
    [site] = [
        p
        for p in interpreter["site_packages"]
        if p.startswith(interpreter["prefix"] + "/") and p.endswith("site-packages")
    ]
    assert isinstance(site, str)
    return site


def _record_rows(site: str, dist_info: str) -> list[list[str]]:
    text = (Path(site) / dist_info / "RECORD").read_text("utf-8")
    return [row for row in csv.reader(text.splitlines()) if row]


@pytest.mark.slow
def test_dev_venv_matches_pip_and_metadata(
    dev_venv: Path, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    manifest = _capture(dev_venv, tmp_path, clean_env)
    assert _versions(manifest) == _pip_list(dev_venv, clean_env, own_pip=False)
    assert manifest["issues"] == []

    [key] = manifest["interpreters"]
    site = _site_packages(manifest)
    requests = manifest["python_packages"]["requests"]
    metadata = (FIXTURES / "wheels" / "requests-2.31.0" / "METADATA").read_text("utf-8")
    headers = email.parser.Parser().parsestr(metadata, headersonly=True)
    rows = _record_rows(site, "requests-2.31.0.dist-info")
    # pip records where the wheel came from (PEP 610 archive_info, a file:// URL).
    direct_url = json.loads(
        (Path(site) / "requests-2.31.0.dist-info" / "direct_url.json").read_text()
    )
    assert direct_url["url"].startswith("file://") and "archive_info" in direct_url
    assert requests == {
        "name": "requests",
        "version": "2.31.0",
        "interpreter": key,
        "location": site,
        "metadata_dir": "requests-2.31.0.dist-info",
        "kind": "dist-info",
        "installer": "pip",
        "requires": headers.get_all("Requires-Dist"),
        "requires_python": headers["Requires-Python"],
        "direct_url": direct_url,
        "editable": False,
        "top_level": ["requests"],
        "files": len(rows),
        "size": sum(int(row[2]) for row in rows if row[2]),
        "shadowed": [],
        "stdlib": False,
    }
    for component in manifest["python_packages"].values():
        assert component["interpreter"] == key
        assert component["location"] == site


@pytest.mark.slow
def test_prod_27_venv_matches_its_own_pip(
    prod_venv: Path, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    manifest = _capture(prod_venv, tmp_path, clean_env)
    ours = {k: v for k, v in _versions(manifest).items() if k not in PIP_HIDDEN}
    assert ours == _pip_list(prod_venv, clean_env, own_pip=True)
    packages = manifest["python_packages"]
    # What pip hides is what envpack marks as the standard library's, and nothing else.
    stdlib = {key for key, component in packages.items() if component["stdlib"]}
    assert stdlib == {"python", "wsgiref"}
    assert packages["wsgiref"]["location"].endswith("/lib/python2.7")
    assert packages["requests"]["version"] == "2.27.1"
    assert packages["enum34"]["top_level"] == ["enum34"]
    assert packages["pip"]["installer"] == "pip"
    assert packages["pip"]["top_level"] == ["pip"]  # no top_level.txt: derived from RECORD


@pytest.mark.slow
def test_byte_identical_captures(dev_venv: Path, tmp_path: Path, clean_env: dict[str, str]) -> None:
    env = {**clean_env, "SOURCE_DATE_EPOCH": "1700000000"}
    _capture(dev_venv, tmp_path, env, name="a.json")
    _capture(dev_venv, tmp_path, env, name="b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


@pytest.mark.slow
def test_verify_lists_exactly_the_changed_files(
    wheel_dir: Path, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    base = pyenv_python("3.11")
    if base is None:
        pytest.skip("CPython 3.11 is not installed (pyenv versions)")
    wheels = [next(wheel_dir.glob(f"{n}-*.whl")) for n in ("requests-2.31.0", "six-1.16.0")]
    python = make_venv(base, tmp_path / "venv", wheels)

    clean = _capture(python, tmp_path, clean_env, "--verify", name="clean.json")
    for name in ("requests", "six"):
        verify = clean["python_packages"][name]["verify"]
        assert verify["checked"] > 0
        assert (verify["modified"], verify["missing"]) == ([], [])

    site = Path(_site_packages(clean))
    with (site / "requests" / "__init__.py").open("a") as stream:
        stream.write("# edited in production\n")
    (site / "six" / "__init__.py").unlink()
    # Bytecode written after install is not in RECORD with a hash; it changes nothing.
    subprocess.run([str(python), "-c", "import requests"], check=True, env=clean_env)

    changed = _capture(python, tmp_path, clean_env, "--verify", name="changed.json")
    found = {
        (key, kind, path)
        for key, component in changed["python_packages"].items()
        for kind in ("modified", "missing")
        for path in component["verify"][kind]
    }
    assert found == {
        ("requests", "modified", "requests/__init__.py"),
        ("six", "missing", "six/__init__.py"),
    }
    # Without --verify nothing is hashed and no verify field appears.
    plain = _capture(python, tmp_path, clean_env, name="plain.json")
    assert all("verify" not in c for c in plain["python_packages"].values())


def test_a_second_verify_rehashes_nothing_unchanged(dev_venv: Path, tmp_path: Path) -> None:
    # --verify reads its sha256 rows through the hash cache, like every other hash.
    options = CaptureOptions(
        pythons=(str(dev_venv),),
        verify=True,
        only=frozenset({"python_packages"}),
        cache_dir=tmp_path / "cache",
    )
    before = hashcache.stats.hashed
    first = capture(Source.live(), options, Redactor(b"k"))
    assert hashcache.stats.hashed > before  # the installed files went through the cache
    before = hashcache.stats.hashed
    second = capture(Source.live(), options, Redactor(b"k"))
    assert hashcache.stats.hashed == before
    verified = {k: c["verify"] for k, c in second.sections["python_packages"].items()}
    assert verified == {k: c["verify"] for k, c in first.sections["python_packages"].items()}
    assert verified["requests"]["checked"] > 0
    assert (verified["requests"]["modified"], verified["requests"]["missing"]) == ([], [])


@pytest.mark.slow
def test_shadowing_follows_the_real_sys_path(
    dev_venv: Path, wheel_dir: Path, tmp_path: Path, clean_env: dict[str, str]
) -> None:
    # requests 2.27.1 unpacked into a folder that PYTHONPATH puts before site-packages.
    early = tmp_path / "early"
    with zipfile.ZipFile(next(wheel_dir.glob("requests-2.27.1-*.whl"))) as archive:
        archive.extractall(early)
    env = {**clean_env, "PYTHONPATH": str(early)}
    manifest = _capture(dev_venv, tmp_path, env)
    requests = manifest["python_packages"]["requests"]
    # The interpreter itself agrees on which one wins.
    imported = subprocess.run(
        [str(dev_venv), "-c", "import importlib.metadata as m; print(m.version('requests'))"],
        capture_output=True, text=True, check=True, env=env,
    ).stdout.strip()  # fmt: skip
    assert (requests["version"], requests["location"]) == (imported, str(early))
    assert requests["shadowed"] == [{"version": "2.31.0", "location": _site_or_first(manifest)}]
    assert manifest["python_packages"]["six"]["shadowed"] == []


def _site_or_first(manifest: dict[str, Any]) -> str:
    [interpreter] = manifest["interpreters"].values()
    sites = [p for p in interpreter["sys_path"] if p.endswith("site-packages")]
    assert isinstance(sites[0], str)
    return sites[0]


@pytest.mark.slow
def test_editable_pep660_install(tmp_path: Path, clean_env: dict[str, str]) -> None:
    base = pyenv_python("3.11")
    if base is None:
        pytest.skip("CPython 3.11 is not installed (pyenv versions)")
    project = tmp_path / "tinyedit"
    shutil.copytree(FIXTURES / "projects" / "tinyedit", project)
    venv = tmp_path / "venv"
    subprocess.run([str(base), "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-index", "--no-deps",
         "--disable-pip-version-check", "-e", str(project)],
        check=True, env=clean_env,
    )  # fmt: skip
    manifest = _capture(python, tmp_path, clean_env)
    component = manifest["python_packages"]["tinyedit"]
    assert component["editable"] is True
    assert component["direct_url"] == {"url": project.as_uri(), "dir_info": {"editable": True}}
    assert component["requires"] == ["six>=1.0"]
    pip_editable = subprocess.run(
        [str(python), "-m", "pip", "list", "-e", "--format=json", "--disable-pip-version-check"],
        capture_output=True, text=True, check=True, env=clean_env,
    ).stdout  # fmt: skip
    assert [d["name"] for d in json.loads(pip_editable)] == ["tinyedit"]
    assert [k for k, c in manifest["python_packages"].items() if c["editable"]] == ["tinyedit"]


@pytest.mark.slow
def test_legacy_27_layouts_egg_info_develop_and_eggs(
    tmp_path: Path, clean_env: dict[str, str]
) -> None:
    base = pyenv_python("2.7")
    if base is None:
        pytest.skip("CPython 2.7 is not installed (pyenv versions)")
    python = make_venv(base, tmp_path / "venv", [])
    env = {**clean_env, "PIP_NO_INDEX": "1"}

    def project(name: str) -> Path:
        dest = tmp_path / name
        shutil.copytree(FIXTURES / "projects" / "oldstyle", dest)
        setup = dest / "setup.py"
        setup.write_text(setup.read_text().replace('name="OldStyle"', f'name="{name}"'))
        return dest

    def run(*args: str, cwd: Path | None = None) -> None:
        subprocess.run([str(python), *args], check=True, env=env, cwd=cwd, capture_output=True)

    # Without `wheel`, pip 20 falls back to `setup.py install`: an egg-info folder with
    # installed-files.txt, the layout of many long-lived production hosts.
    run("-m", "pip", "uninstall", "-y", "-q", "wheel")
    run("-m", "pip", "install", "-q", "--no-deps", str(project("Legacy.Pip")))
    # `setup.py develop`: an .egg-link, and the project folder on sys.path.
    run("setup.py", "-q", "develop", "--no-deps", cwd=project("Old_Develop"))
    # easy_install: an unzipped .egg, put on sys.path by easy-install.pth (-H None: offline).
    run("-m", "easy_install", "-q", "-N", "-Z", "-H", "None", str(project("old-egg")))
    # …and a zipped one (-z), read from inside the zip.
    run("-m", "easy_install", "-q", "-N", "-z", "-H", "None", str(project("zipped_egg")))

    manifest = _capture(python, tmp_path, clean_env)
    packages = manifest["python_packages"]
    ours = {k: v for k, v in _versions(manifest).items() if k not in PIP_HIDDEN}
    assert ours == _pip_list(python, clean_env, own_pip=True)
    assert manifest["issues"] == []
    site = _site_packages(manifest)
    legacy = packages["legacy-pip"]
    assert (legacy["kind"], legacy["location"], legacy["editable"]) == ("egg-info", site, False)
    assert legacy["metadata_dir"] == "Legacy.Pip-0.3-py2.7.egg-info"
    installed = (Path(site) / legacy["metadata_dir"] / "installed-files.txt").read_text()
    assert legacy["files"] == len(installed.split())
    assert legacy["requires"] == [
        "six>=1.0",
        "enum34; python_version < '3'",
        'simplejson; extra == "fast"',
    ]
    assert legacy["top_level"] == ["oldstyle"]
    develop = packages["old-develop"]
    assert (develop["kind"], develop["location"], develop["editable"]) == (
        "egg-info",
        str(tmp_path / "Old_Develop"),
        True,
    )
    egg = packages["old-egg"]
    assert (egg["kind"], egg["location"], egg["metadata_dir"], egg["editable"]) == (
        "egg",
        site,
        "old_egg-0.3-py2.7.egg",
        False,
    )
    zipped = packages["zipped-egg"]
    assert (zipped["kind"], zipped["metadata_dir"], zipped["top_level"]) == (
        "egg",
        "zipped_egg-0.3-py2.7.egg",
        ["oldstyle"],
    )
    assert (Path(site) / zipped["metadata_dir"]).is_file()
    assert zipped["requires"] == legacy["requires"]
    editable_per_pip = subprocess.run(
        [str(python), "-m", "pip", "list", "-e", "--format=json"],
        capture_output=True, text=True, check=True, env=clean_env,
    ).stdout  # fmt: skip
    assert {canonical_name(d["name"]) for d in json.loads(editable_per_pip)} == {
        k for k, c in packages.items() if c["editable"]
    }


# -- in-process, against fixture trees and hand-made folders -------------------------------


def _context(
    sys_path: list[str], *, verify: bool = False, source: Source | None = None
) -> CaptureContext:
    ctx = CaptureContext(
        source or Source.live(), CaptureOptions(verify=verify), Redactor(b"test-key")
    )
    ctx.sections["interpreters"] = {
        "/usr/bin/python3": {
            "primary": True,
            "sys_path": sys_path,
            "site_packages": [p for p in sys_path if p.endswith("-packages")],
        }
    }
    return ctx


def _schema_check(ctx: CaptureContext) -> None:
    schema = json.loads(schema_text())
    component_schema = {**schema, **schema["$defs"]["python_packages_component"]}
    for component in ctx.sections["python_packages"].values():
        jsonschema.validate(component, component_schema)


def test_fixture_tree_components_and_issues() -> None:
    legacy = str(FIXTURES / "site-packages" / "legacy")
    ctx = _context([legacy])
    python_packages.probe(ctx)
    _schema_check(ctx)
    packages = ctx.sections["python_packages"]
    assert sorted(packages) == ["distutils-thing", "legacy-lib", "noname", "oldtool"]
    assert packages["legacy-lib"]["files"] == 6
    assert packages["legacy-lib"]["size"] is None
    assert packages["legacy-lib"]["installer"] == "pip"
    assert packages["oldtool"]["kind"] == "egg"
    assert packages["oldtool"]["top_level"] == ["oldtool"]
    assert packages["distutils-thing"]["files"] is None
    assert sorted(
        (i.path.rsplit("/", 1)[1], i.reason.split(":")[-1].strip()) for i in ctx.issues
    ) == [
        ("broken-1.0.dist-info", "no such file; not a readable distribution"),
        ("noname-3.0.dist-info", "no Name or Version header; taken from the folder"),
    ]


def test_missing_interpreters_section_is_an_issue() -> None:
    ctx = CaptureContext(Source.live(), CaptureOptions(), Redactor(b"k"))
    python_packages.probe(ctx)
    assert ctx.sections["python_packages"] == {}
    assert [i.probe for i in ctx.issues] == ["python_packages"]
    assert "--only interpreters" in ctx.issues[0].reason
    # No interpreter found: the interpreters probe reports that, not this one.
    ctx = CaptureContext(Source.live(), CaptureOptions(), Redactor(b"k"))
    ctx.sections["interpreters"] = {}
    python_packages.probe(ctx)
    assert (ctx.sections["python_packages"], ctx.issues) == ({}, [])


def test_only_python_packages_from_the_cli(clean_env: dict[str, str]) -> None:
    result = run_envpack("capture", "--only", "python_packages", "-q", env=clean_env)
    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout)
    # --only python_packages also captures the interpreter whose sys.path it walks.
    assert [c["primary"] for c in manifest["interpreters"].values()] == [True]
    assert "pip" in manifest["python_packages"]
    assert manifest["issues"] == []


def _dist_info(site: Path, name: str, version: str, **files: str) -> Path:
    folder = site / f"{name}-{version}.dist-info"
    folder.mkdir(parents=True)
    (folder / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n")
    for file_name, text in files.items():
        (folder / file_name.replace("_json", ".json")).write_text(text)
    return folder


def test_direct_url_passwords_are_redacted(tmp_path: Path) -> None:
    secret = "hunter2-canary"
    site = tmp_path / "site-packages"
    url = f"https://deploy:{secret}@git.example.org/app.git"
    direct = {"url": url, "vcs_info": {"vcs": "git", "commit_id": "0" * 40}}
    _dist_info(site, "app", "1.0", direct_url_json=json.dumps(direct))
    ctx = _context([str(site)])
    python_packages.probe(ctx)
    _schema_check(ctx)
    component = ctx.sections["python_packages"]["app"]
    assert secret not in json.dumps(component)
    assert component["direct_url"]["url"].startswith("https://deploy:{hmac-sha256:")
    assert component["direct_url"]["vcs_info"] == direct["vcs_info"]
    assert component["editable"] is False


def test_requires_dist_urls_are_redacted(tmp_path: Path) -> None:
    token = "ghp_" + "Zq9mN4vR7x" * 3 + "ab12cd"
    site = tmp_path / "site-packages"
    folder = site / "app-1.0.dist-info"
    folder.mkdir(parents=True)
    (folder / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: app\nVersion: 1.0\n"
        f"Requires-Dist: lib @ https://{token}@github.com/org/lib/archive/v1.zip\n"
        "Requires-Dist: requests (>=2.31)\n\n"
    )
    ctx = _context([str(site)])
    python_packages.probe(ctx)
    requires = ctx.sections["python_packages"]["app"]["requires"]
    assert token not in json.dumps(requires)
    assert requires[0].startswith("lib @ https://{hmac-sha256:")
    assert "requests" in requires[1] and ">=2.31" in requires[1]


def test_corrupt_direct_url_is_an_issue_not_a_crash(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    _dist_info(site, "app", "1.0", direct_url_json="{not json", RECORD="app.py,,\n")
    ctx = _context([str(site)])
    python_packages.probe(ctx)
    assert ctx.sections["python_packages"]["app"]["direct_url"] is None
    assert ctx.sections["python_packages"]["app"]["files"] == 1
    assert len(ctx.issues) == 1 and "not valid JSON" in ctx.issues[0].reason


def test_non_primary_interpreter_keys(tmp_path: Path) -> None:
    site_a, site_b = tmp_path / "a", tmp_path / "b"
    _dist_info(site_a, "Foo_Bar", "1.0")
    _dist_info(site_b, "foo.bar", "2.0")
    ctx = _context([str(site_a)])
    ctx.sections["interpreters"]["/opt/py/bin/python"] = {
        "primary": False,
        "sys_path": [str(site_b)],
    }
    python_packages.probe(ctx)
    packages = ctx.sections["python_packages"]
    assert sorted(packages) == ["foo-bar", "foo-bar@/opt/py/bin/python"]
    assert packages["foo-bar"]["name"] == "Foo_Bar"
    assert packages["foo-bar@/opt/py/bin/python"]["interpreter"] == "/opt/py/bin/python"


def test_offline_rootfs_through_the_source(tmp_path: Path) -> None:
    site = tmp_path / "usr" / "lib" / "python3" / "dist-packages"
    _dist_info(site, "demo", "1.0", RECORD="demo.py,sha256=AAAA,3\n")
    (site / "demo.py").write_text("x\n")
    ctx = _context(["/usr/lib/python3/dist-packages"], verify=True, source=Source.rootfs(tmp_path))
    python_packages.probe(ctx)
    _schema_check(ctx)
    demo = ctx.sections["python_packages"]["demo"]
    assert demo["location"] == "/usr/lib/python3/dist-packages"
    assert demo["verify"] == {"checked": 1, "modified": ["demo.py"], "missing": []}
    assert demo["top_level"] == ["demo"]


def test_unreadable_site_dir_does_not_stop_the_others(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root reads a 0o000 folder anyway; a FIFO where a folder should be does fail.
        blocked = tmp_path / "blocked"
        os.mkfifo(blocked)
    else:
        blocked = tmp_path / "blocked"
        blocked.mkdir(mode=0)
    good = tmp_path / "good"
    _dist_info(good, "ok", "1.0")
    ctx = _context([str(blocked), str(good)])
    python_packages.probe(ctx)
    assert list(ctx.sections["python_packages"]) == ["ok"]
