"""Run the interpreter probe *inside* an image: the same probe capture runs on a live host.

Two ways, best first:

* a Docker Engine (``DOCKER_HOST`` honoured): ``docker run --rm --network none --read-only
  --entrypoint INTERPRETER IMAGE -c PROBE`` through the Docker SDK, with the image's own
  environment, user and working folder — what the application gets. The image is found
  in the engine by its ID (its config digest); one that is not there is loaded from an
  untagged archive (:mod:`.loadable`) and removed afterwards.
* bubblewrap over a rootfs folder: ``bwrap --ro-bind ROOTFS / --unshare-all …`` with the
  image's environment, for a machine without an engine.

A probe that fails inside the image (the interpreter is missing, crashes, cannot load a
library) raises :class:`~envpack.snapshot.interpreters.ProbeFailed`: for verify that is a
finding, not an error of envpack.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envpack.errors import UsageError
from envpack.snapshot.interpreters import ProbeFailed, describe, parse_answer, probe_source
from envpack.verify.loadable import LoadArchive

if TYPE_CHECKING:
    import docker

__all__ = [
    "CONTAINER_PREFIX",
    "ImageRun",
    "bwrap_available",
    "probe_in_docker",
    "probe_in_rootfs",
]

CONTAINER_PREFIX = "envpack-verify-"
"""Containers verify makes are named so (and removed when the probe ends)."""
_MAX_OUTPUT = 4 * 1024 * 1024


@dataclass(frozen=True)
class ImageRun:
    """How the image runs a program: from its config (``Env``, ``User``, ``WorkingDir``)."""

    env: Mapping[str, str] = field(default_factory=dict)
    user: str = ""
    workdir: str = ""

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ImageRun:
        inner = config.get("config") or {}
        if not isinstance(inner, Mapping):
            inner = {}
        env: dict[str, str] = {}
        for item in inner.get("Env") or ():
            if isinstance(item, str) and "=" in item:
                name, _, value = item.partition("=")
                env[name] = value
        user = inner.get("User")
        workdir = inner.get("WorkingDir")
        return cls(
            env=env,
            user=user if isinstance(user, str) else "",
            workdir=workdir if isinstance(workdir, str) else "",
        )


# -- Docker Engine ----------------------------------------------------------------------------


Loader = Callable[[], LoadArchive]
"""Writes a ``docker load`` archive of the image (called only when the engine lacks it)."""


def probe_in_docker(
    client: docker.DockerClient,
    image_id: str,
    executable: str,
    *,
    timeout: float,
    loader: Loader | None = None,
) -> dict[str, Any]:
    """The probe's component from ``executable`` run in image ``image_id`` (``sha256:…``).

    ``loader`` gives an archive to load when the engine does not hold the image; what was
    loaded is removed again. Engine failures are :class:`UsageError` (verify cannot run
    the probe); the interpreter's own failure is :class:`ProbeFailed`.
    """
    import docker.errors
    import requests

    loaded: str | None = None
    try:
        if _has_image(client, image_id):
            return _run(client, image_id, executable, timeout=timeout)
        if loader is None:
            raise UsageError(f"the Docker Engine does not hold image {image_id}")
        archive = loader()
        if _has_image(client, archive.image_id):  # held already, under the archive's ID
            return _run(client, archive.image_id, executable, timeout=timeout)
        _load(client, archive)
        loaded = archive.image_id
        return _run(client, loaded, executable, timeout=timeout)
    except (docker.errors.DockerException, requests.RequestException) as err:
        raise UsageError(f"Docker Engine: {_one_line(err)}") from err
    finally:
        if loaded is not None:
            with contextlib.suppress(docker.errors.DockerException, requests.RequestException):
                client.images.remove(loaded, noprune=False)


def _has_image(client: docker.DockerClient, image_id: str) -> bool:
    import docker.errors

    try:
        client.images.get(image_id)
    except docker.errors.ImageNotFound:
        return False
    return True


def _load(client: docker.DockerClient, archive: LoadArchive) -> None:
    with archive.path.open("rb") as stream:
        # Read to the end whatever it says (stopping early leaves the connection half-read).
        answer = list(client.api.load_image(stream))  # type: ignore[no-untyped-call]  # untyped stubs
    errors = [str(c["error"]) for c in answer if isinstance(c, dict) and "error" in c]
    if errors:
        raise UsageError(f"docker load of the image failed: {_one_line(errors[0])}")
    if not _has_image(client, archive.image_id):
        raise UsageError(f"docker load did not give image {archive.image_id}")


def _run(
    client: docker.DockerClient, image_id: str, executable: str, *, timeout: float
) -> dict[str, Any]:
    import docker.errors
    import requests

    name = f"{CONTAINER_PREFIX}{secrets.token_hex(6)}"
    try:
        container = client.containers.create(
            image_id,
            entrypoint=[executable],
            command=["-c", probe_source()],
            name=name,
            network_mode="none",
            read_only=True,
            labels={"io.envpack.verify": "probe"},
        )
    except docker.errors.APIError as err:
        raise ProbeFailed(f"cannot run in the image: {_one_line(err)}") from err
    try:
        try:
            container.start()
        except docker.errors.APIError as err:
            # The runtime could not exec the entrypoint: no such interpreter in the image.
            raise ProbeFailed(f"cannot run in the image: {_one_line(err)}") from err
        try:
            status = container.wait(timeout=timeout)
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as err:
            # The SDK's read timeout comes as either, depending on urllib3's version.
            raise ProbeFailed(
                f"did not answer within {timeout:g} s in the image (hung?); container removed"
            ) from err
        out = container.logs(stdout=True, stderr=False)
        err_out = container.logs(stdout=False, stderr=True)
    finally:
        with contextlib.suppress(docker.errors.DockerException, requests.RequestException):
            container.remove(force=True)
    code = int(status.get("StatusCode", -1))
    if len(out) > _MAX_OUTPUT:
        raise ProbeFailed("printed too much output; not a Python interpreter?")
    if code != 0:
        raise ProbeFailed(f"exited with status {code} in the image{_last_line(err_out)}")
    return parse_answer(out, err_out)


def _last_line(data: bytes) -> str:
    lines = [line.strip() for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
    return f": {lines[-1][:300]}" if lines else ""


def _one_line(err: BaseException | str) -> str:
    text = str(err).strip()
    return (text.splitlines() or [type(err).__name__])[0][:300]


# -- bubblewrap over a rootfs --------------------------------------------------------------


def bwrap_available() -> str | None:
    """The ``bwrap`` program, when installed."""
    return shutil.which("bwrap")


def probe_in_rootfs(
    rootfs: Path, executable: str, run: ImageRun, *, timeout: float, bwrap: str | None = None
) -> dict[str, Any]:
    """The probe's component from ``executable`` run under bubblewrap with ``rootfs`` as /.

    The root is bound read-only, every namespace is unshared (no network), the
    environment is the image's alone. No tmpfs goes over ``/tmp``: an environment packed
    from a folder there (a CI job's) must stay visible, as in ``docker run --read-only``.
    """
    program = bwrap or bwrap_available()
    if program is None:
        raise UsageError("bwrap is not installed: cannot run the interpreter in the rootfs")
    wrapper: Sequence[str] = (
        program,
        "--ro-bind", str(rootfs), "/",
        "--proc", "/proc",
        "--dev", "/dev",
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        *[arg for name, value in sorted(run.env.items()) for arg in ("--setenv", name, value)],
        "--chdir", run.workdir or "/",
        "--",
    )  # fmt: skip
    return describe(executable, {}, timeout=timeout, wrapper=wrapper)
