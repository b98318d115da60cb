"""Pack a captured user space into a reproducible OCI image (not built yet)."""
