"""The HTTP service: a thin FastAPI layer over the domain."""

from rempart.api.app import create_app

__all__ = ["create_app"]
