"""The HTTP API: thin FastAPI routes over the domain services."""

from carveout.api.app import create_app

__all__ = ["create_app"]
