"""Push images and manifests to OCI registries, and read manifests back (issue 10).

- :mod:`.refs`: ``HOST/REPO:TAG`` references and the URL of a host.
- :mod:`.auth`: credentials (Docker's config file through the Docker SDK, or given) and
  the Basic and Bearer answers to a 401.
- :mod:`.http`: the HTTP/1.1 transport (``http.client``, keep-alive connections).
- :mod:`.client`: requests with auth and retries.
- :mod:`.blobs`: skip, mount, stream (monolithic or chunked) one blob.
- :mod:`.push`: a whole image, from the builder's model or an OCI layout.
- :mod:`.referrers`: artifacts with a ``subject``, with the tag-schema fallback.
- :mod:`.artifact`: envpack manifests as artifacts (``capture --push``, ``registry:`` inputs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from envpack._lazy import lazy_exports

if TYPE_CHECKING:
    from envpack.registry.artifact import (
        ARTIFACT_TYPE,
        pull_manifest,
        pull_manifests,
        push_manifest,
    )
    from envpack.registry.auth import Credentials, docker_config_credentials
    from envpack.registry.client import RegistryClient
    from envpack.registry.errors import AuthError, RegistryError, TransientError
    from envpack.registry.push import PushResult, push_image, push_layout
    from envpack.registry.referrers import push_artifact, push_referrer, referrers_tag
    from envpack.registry.refs import REGISTRY_PREFIX, RegistryRef, is_registry_argument

__all__ = [
    "ARTIFACT_TYPE",
    "REGISTRY_PREFIX",
    "AuthError",
    "Credentials",
    "PushResult",
    "RegistryClient",
    "RegistryError",
    "RegistryRef",
    "TransientError",
    "docker_config_credentials",
    "is_registry_argument",
    "pull_manifest",
    "pull_manifests",
    "push_artifact",
    "push_image",
    "push_layout",
    "push_manifest",
    "push_referrer",
    "referrers_tag",
]

# Imported on first use: `envpack push` needs neither artifacts nor referrers.
__getattr__ = lazy_exports(
    globals(),
    {
        "ARTIFACT_TYPE": "artifact",
        "pull_manifest": "artifact",
        "pull_manifests": "artifact",
        "push_manifest": "artifact",
        "Credentials": "auth",
        "docker_config_credentials": "auth",
        "RegistryClient": "client",
        "AuthError": "errors",
        "RegistryError": "errors",
        "TransientError": "errors",
        "PushResult": "push",
        "push_image": "push",
        "push_layout": "push",
        "push_artifact": "referrers",
        "push_referrer": "referrers",
        "referrers_tag": "referrers",
        "REGISTRY_PREFIX": "refs",
        "RegistryRef": "refs",
        "is_registry_argument": "refs",
    },
)
