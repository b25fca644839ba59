"""carveout: a short-video backend whose every record knows its jurisdiction."""

__version__ = "0.1.0"
__all__ = ["__version__"]
