"""Entry point for uvicorn workers (``factory=True``): settings are read in each worker."""

from __future__ import annotations

from fastapi import FastAPI

from rempart.api.app import create_app
from rempart.config import load_settings
from rempart.logs import configure_logging


def app() -> FastAPI:
    settings = load_settings()
    configure_logging(settings.log_level, json=True)
    return create_app(settings)
