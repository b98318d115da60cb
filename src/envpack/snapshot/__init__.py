"""Sources and probes: turn an environment into a manifest."""
