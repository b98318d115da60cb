"""Compare manifests, grade the drift, and render it."""
