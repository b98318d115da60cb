"""envpack: make an application's environment visible, comparable and packable."""

__version__ = "0.1.0"

__all__ = ["__version__"]
