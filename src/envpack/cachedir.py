"""Where envpack keeps its caches: one function, importable without the capture code.

The hash cache, the layer cache and the registry's mount record all live under it;
``envpack push`` needs the folder but none of the snapshot machinery around the hash cache.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_cache_dir"]


def default_cache_dir() -> Path:
    """``$ENVPACK_CACHE_DIR`` when set, else envpack's folder in the user cache folder."""
    override = os.environ.get("ENVPACK_CACHE_DIR", "")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_cache_path("envpack"))
