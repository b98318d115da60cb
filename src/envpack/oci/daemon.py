"""Load an image archive into a Docker Engine through the Docker SDK (``DOCKER_HOST`` honoured)."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from envpack.errors import PackError

if TYPE_CHECKING:
    import docker

__all__ = ["DEFAULT_SOCKET", "client_from_env", "load_into_docker"]

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
# What the engine prints per image: "Loaded image: app:1" or "Loaded image ID: sha256:…".
_LOADED = re.compile(r"Loaded image(?: ID)?: (\S+)$")


class _NoEngine(PackError):
    """No engine listens where DOCKER_HOST (or the default socket) points."""


def load_into_docker(archive: Path, *, client: docker.DockerClient | None = None) -> str:
    """Stream ``archive`` to the engine's ``/images/load``; return the loaded image's id.

    Without ``client`` one is made from the environment (``DOCKER_HOST``, ``DOCKER_TLS_*``).
    Every failure — no engine, an engine that refuses the archive, an unreadable file — is
    a PackError of one line.
    """
    import docker
    import docker.errors
    import requests

    engine = client
    try:
        if engine is None:
            engine = _client_from_env()
        with archive.open("rb") as stream:
            loaded, errors = _load(engine, stream)
        if errors:
            raise PackError(f"docker load of {archive} failed: {_one_line(errors[0])}")
        if not loaded:
            raise PackError(f"docker load of {archive} failed: the engine reported no image")
        image_id = engine.images.get(loaded[0]).id
    except _NoEngine as err:
        raise PackError(f"docker load of {archive} failed: {err}") from err
    except (docker.errors.DockerException, requests.RequestException) as err:
        # before OSError: requests' errors are OSErrors too
        raise PackError(f"docker load of {archive} failed: {_one_line(err)}") from err
    except OSError as err:
        raise PackError(f"cannot read {archive}: {err.strerror or err}") from err
    finally:
        if client is None and engine is not None:
            engine.close()
    if not isinstance(image_id, str):
        raise PackError(f"docker load of {archive} failed: the engine gave no image id")
    return image_id


def _load(engine: docker.DockerClient, stream: BinaryIO) -> tuple[list[str], list[str]]:
    """POST the archive; the names or ids the engine says it loaded, and its errors.

    The response is read to its end whatever it says (the SDK's ``images.load`` raises at
    the first error line and leaves the connection half-read, leaking its socket).
    """
    loaded: list[str] = []
    errors: list[str] = []
    for chunk in engine.api.load_image(stream):  # type: ignore[no-untyped-call]  # untyped in the stubs
        if not isinstance(chunk, dict):
            continue
        if "error" in chunk:
            errors.append(str(chunk["error"]))
        match = _LOADED.match(str(chunk.get("stream", "")).strip())
        if match:
            loaded.append(match.group(1))
    return loaded, errors


def _one_line(err: BaseException | str) -> str:
    text = getattr(err, "explanation", None) or str(err)
    return " ".join(str(text).split()) or type(err).__name__


def client_from_env() -> docker.DockerClient:
    """A Docker SDK client from the environment (``DOCKER_HOST``, ``DOCKER_TLS_*``).

    Raises :class:`PackError` (one line) when no engine answers at a unix socket.
    """
    return _client_from_env()


def _client_from_env() -> docker.DockerClient:
    """``docker.from_env()``, negotiating the API version without leaking a socket.

    ``from_env`` asks the engine its version inside the constructor and, when no engine
    answers, drops the half-made client with its socket open; here the question goes
    through a client that is always closed.
    """
    import docker
    import docker.utils
    from docker.constants import MINIMUM_DOCKER_API_VERSION

    options = docker.utils.kwargs_from_env()
    _check_unix_socket(str(options.get("base_url") or DEFAULT_SOCKET))
    probe = docker.APIClient(version=MINIMUM_DOCKER_API_VERSION, **options)
    try:
        version = probe.version(api_version=False)["ApiVersion"]
    finally:
        probe.close()
    return docker.DockerClient(version=str(version), **options)


def _check_unix_socket(base_url: str) -> None:
    """Fail early, with the reason, when a ``unix://`` engine socket does not answer.

    The Docker SDK leaves its socket open when a unix connect fails; trying it here first
    gives the user ``No such file or directory`` instead of a retry chain.
    """
    if not base_url.startswith(("unix://", "http+unix://")):
        return
    path = base_url.split("://", 1)[1]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(10)
        try:
            probe.connect(path)
        except OSError as err:
            raise _NoEngine(
                f"no Docker Engine answers at {base_url}: {err.strerror or err}"
            ) from err
