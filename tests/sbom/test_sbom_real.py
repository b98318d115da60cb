"""SBOMs of real captures: this machine's dpkg database, a real venv, real rootfs fixtures.

Oracles: ``dpkg-query`` for the system packages, the venv's own ``importlib.metadata``
for the distributions, the interpreter itself for its version, ``dpkg -S`` and hashlib
for each library's owner and sha256. Validated by cyclonedx-python-lib's CycloneDX 1.6
validator, the SPDX 2.3 JSON schema (schemas/README.md) and spdx-tools' own validator.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from envpack.manifest import load_manifest
from envpack.sbom import CYCLONEDX_MEDIA_TYPE, SPDX_MEDIA_TYPE, render_sbom
from realenv import FIXTURES, make_venv, pyenv_python, run_envpack

# A live capture and a thousand-component BOM rendered several times: minutes on a loaded
# machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SPDX_SCHEMA = Path(__file__).parent / "schemas" / "spdx-schema-2.3.json"
SECRET = "hunter2-not-for-any-sbom"


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env.pop("SOURCE_DATE_EPOCH", None)
    env.setdefault("ENVPACK_REDACT_KEY", "envpack-test-key")
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(manifest, venv python): a real venv of pyenv's CPython 3.11 captured live."""
    python = pyenv_python("3.11")
    if python is None:
        pytest.skip("CPython 3.11 is not installed (pyenv versions)")
    base = tmp_path_factory.mktemp("sbom")
    venv_python = make_venv(python, base / "venv", [])
    subprocess.run(
        [str(venv_python), "-m", "ensurepip"], capture_output=True, check=True
    )  # pip and setuptools: real distributions in the venv
    manifest = base / "live.json"
    done = run_envpack(
        "capture", "-q", "--python", str(venv_python), "-o", str(manifest),
        env=_env(API_TOKEN=SECRET, ENVPACK_CACHE_DIR=str(base / "cache")), timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return manifest, venv_python


def _cdx(manifest: Path, **env: str) -> dict[str, Any]:
    document = render_sbom(load_manifest(manifest), "cyclonedx", environ=env)
    assert document.media_type == CYCLONEDX_MEDIA_TYPE == document.artifact_type
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(document.data.decode())
    assert error is None, str(error)
    data: dict[str, Any] = json.loads(document.data)
    return data


def _walk(
    components: list[dict[str, Any]], parent: str = ""
) -> Iterator[tuple[str, dict[str, Any]]]:
    for component in components:
        yield parent, component
        yield from _walk(component.get("components", []), component["bom-ref"])


def _os_release() -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in Path("/etc/os-release").read_text().splitlines():
        key, _, value = line.partition("=")
        fields[key] = value.strip('"')
    return fields


def test_cyclonedx_of_this_machine_matches_dpkg_pip_and_the_files(live: tuple[Path, Path]) -> None:
    manifest, venv_python = live
    if shutil.which("dpkg-query") is None:
        pytest.skip("no dpkg on this machine")
    bom = _cdx(manifest)
    found = {c["bom-ref"]: (parent, c) for parent, c in _walk(bom["components"])}
    purls = {c.get("purl", "") for _, c in found.values()}

    release = _os_release()
    distro = f"{release['ID']}-{release['VERSION_ID']}"
    listed = subprocess.run(
        ["dpkg-query", "-W", "-f", "${db:Status-Abbrev}|${Package}|${Version}|${Architecture}\n"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    installed = [line.split("|")[1:] for line in listed if line.startswith("ii")]
    assert len(installed) > 50
    deb = {unquote(p) for p in purls if p.startswith(f"pkg:deb/{release['ID']}/")}
    for name, version, arch in installed:
        prefix = f"pkg:deb/{release['ID']}/{name}@{version}?arch={arch}&distro={distro}"
        assert any(p.startswith(prefix) for p in deb), prefix

    code = (
        "import json, importlib.metadata as m; "
        "print(json.dumps(sorted((d.metadata['Name'], d.version) for d in m.distributions())))"
    )
    dists = json.loads(
        subprocess.run([str(venv_python), "-c", code], capture_output=True, text=True,
                       check=True).stdout
    )  # fmt: skip
    assert any(name == "pip" for name, _ in dists)
    for name, version in dists:
        normalized = name.lower().replace("_", "-").replace(".", "-")
        assert f"pkg:pypi/{normalized}@{version}" in purls, (name, version)

    version = subprocess.run(
        [str(venv_python), "-c", "import platform; print(platform.python_version())"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    interpreters = [
        c for _, c in found.values() if c.get("cpe", "").startswith("cpe:2.3:a:python:")
    ]
    assert interpreters and interpreters[0]["version"] == version
    assert interpreters[0]["cpe"] == f"cpe:2.3:a:python:python:{version}:*:*:*:*:*:*:*"

    libraries = [(parent, c) for parent, c in found.values() if c["bom-ref"].startswith("library:")]
    assert len(libraries) > 5
    paths = {
        library["bom-ref"]: {p["name"]: p["value"] for p in library.get("properties", [])}[
            "envpack:path"
        ]
        for _, library in libraries
    }
    # One dpkg -S for all of them: "package[, other]: path" per owned path.
    answer = subprocess.run(
        ["dpkg", "-S", *sorted(set(paths.values()))], capture_output=True, text=True, check=False
    ).stdout
    owners: dict[str, str] = {}
    for line in answer.splitlines():
        package, _, path = line.partition(": ")
        owners[path] = package.split(",")[0].split(":")[0]
    checked = 0
    for parent, library in libraries:
        path = library["bom-ref"][len("library:") :]
        sha = [h["content"] for h in library.get("hashes", []) if h["alg"] == "SHA-256"]
        assert sha == [hashlib.sha256(Path(path).read_bytes()).hexdigest()], path
        props = {p["name"]: p["value"] for p in library.get("properties", [])}
        owner = owners.get(props["envpack:path"])
        if owner is not None:
            # Nested in its owner's component (a CycloneDX assembly).
            assert parent.startswith(f"pkg:deb/{release['ID']}/{owner}@"), (path, parent)
            assert props["envpack:owner"] == f"dpkg:{owner}"
            checked += 1
    assert checked > 5

    # The environment's root depends on every top-level component.
    root = bom["metadata"]["component"]["bom-ref"]
    graph = {d["ref"]: d.get("dependsOn", []) for d in bom["dependencies"]}
    assert sorted(graph[root]) == sorted(c["bom-ref"] for c in bom["components"])


def test_spdx_validates_with_the_schema_and_spdx_tools(
    live: tuple[Path, Path], tmp_path: Path
) -> None:
    manifest, _ = live
    document = render_sbom(load_manifest(manifest), "spdx", environ={})
    assert document.media_type == SPDX_MEDIA_TYPE
    import jsonschema

    data = json.loads(document.data)
    jsonschema.Draft7Validator(json.loads(SPDX_SCHEMA.read_text())).validate(data)
    out = tmp_path / "sbom.spdx.json"
    out.write_bytes(document.data)
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    messages = validate_full_spdx_document(parse_file(str(out)))
    assert [m.validation_message for m in messages] == []
    cdx = _cdx(manifest)
    count = sum(1 for _ in _walk(cdx["components"]))
    assert len(data["packages"]) == count + 1  # + the environment itself
    purls = {
        ref["referenceLocator"]
        for package in data["packages"]
        for ref in package.get("externalRefs", [])
        if ref["referenceType"] == "purl"
    }
    assert purls == {c["purl"] for _, c in _walk(cdx["components"]) if "purl" in c}
    ids = {p["SPDXID"] for p in data["packages"]}
    assert len(ids) == len(data["packages"])
    assert all(
        r["spdxElementId"] in ids | {"SPDXRef-DOCUMENT"} and r["relatedSpdxElement"] in ids
        for r in data["relationships"]
    )


def test_reproducible_dated_and_secret_free(live: tuple[Path, Path]) -> None:
    manifest, _ = live
    loaded = load_manifest(manifest)
    # An SBOM is rendered from the manifest alone, where the token is only a fingerprint
    # (so the secret itself cannot reach it); the SBOM must leave out even that.
    assert SECRET.encode() not in manifest.read_bytes()  # redacted at capture already
    token = loaded.section("env")["API_TOKEN"]
    assert token["redacted"] is True
    assert str(token["value"]).startswith("hmac-sha256:")
    for fmt in ("cyclonedx", "spdx"):
        first = render_sbom(loaded, fmt, environ={"SOURCE_DATE_EPOCH": "1700000000"})
        again = render_sbom(
            load_manifest(manifest), fmt, environ={"SOURCE_DATE_EPOCH": "1700000000"}
        )
        assert first.data == again.data
        assert b'"2023-11-14T22:13:20' in first.data  # Z or +00:00, as each format writes it
        captured = render_sbom(loaded, fmt, environ={})
        assert f'"{loaded.meta.captured_at[:19]}'.encode() in captured.data
        assert captured.data != first.data
        assert b"hmac-sha256" not in first.data
    cdx = json.loads(render_sbom(loaded, "cyclonedx", environ={}).data)
    # Another manifest (one package fewer) gets another serial number.
    loaded.sections["python_packages"].pop("pip")
    other = json.loads(render_sbom(loaded, "cyclonedx", environ={}).data)
    assert other["serialNumber"] != cdx["serialNumber"]
    assert cdx["serialNumber"].startswith("urn:uuid:")


@pytest.mark.parametrize(
    ("rootfs", "purl"),
    [
        ("alpine-mini", "pkg:apk/alpine/{name}@{version}?arch={arch}&distro=alpine-3.19.1"),
        ("rpm-mini", "pkg:rpm/fedora/{name}@{version}?arch={arch}&distro=fedora-39"),
        ("debian-py39-dpkg", "pkg:deb/debian/{name}@{version}?arch={arch}&distro=debian-11"),
    ],
)
def test_apk_rpm_and_foreign_deb_purls_from_real_databases(
    rootfs: str, purl: str, tmp_path: Path
) -> None:
    out = tmp_path / "m.json"
    done = run_envpack(
        "capture", "-q", "--root", str(FIXTURES / "rootfs" / rootfs), "-o", str(out),
        env=_env(ENVPACK_CACHE_DIR=str(tmp_path / "cache")),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    packages = load_manifest(out).section("system_packages")
    assert packages
    bom = _cdx(out)
    purls = {unquote(c.get("purl", "")) for _, c in _walk(bom["components"])}
    for component in packages.values():
        name, version = component["name"], component["version"]
        arch = component.get("architecture", "")
        if component["manager"] == "rpm" and ":" in version:
            version = version.split(":", 1)[1]
        expected = purl.format(name=name, version=version, arch=arch)
        assert any(p.startswith(expected) for p in purls), (expected, sorted(purls)[:5])
    spdx = render_sbom(load_manifest(out), "spdx", environ={})
    import jsonschema

    jsonschema.Draft7Validator(json.loads(SPDX_SCHEMA.read_text())).validate(json.loads(spdx.data))
