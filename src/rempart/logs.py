"""Structured logs (structlog). Nothing here ever receives a NIR: callers log pseudonyms.

Every line goes through one formatter, the service's own events and those of the
libraries it runs on (uvicorn's start and stop, Alembic, SQLAlchemy) alike: with
``json=True`` (``rempart serve``) each line of standard error is one JSON object with
``event``, ``level`` and ``timestamp``. A traceback never reaches a line, only the
exception's type: its message or its frames could quote input.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog
from structlog.typing import EventDict, WrappedLogger

__all__ = ["configure_logging"]


class _CurrentStderr(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is at the time of the record, not at set-up.

    A handler bound to a stream that is later closed or swapped (a test runner's capture,
    a daemonised process) would otherwise fail on every record.
    """

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        return


def _exception_type_only(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    info = event.pop("exc_info", None)
    event.pop("exception", None)
    event.pop("stack_info", None)
    if isinstance(info, tuple) and info[0] is not None:
        event.setdefault("error_type", info[0].__name__)
    elif isinstance(info, BaseException):
        event.setdefault("error_type", type(info).__name__)
    return event


def _level_name(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    # A library's record says "warning" as the service's events do (not "WARNING").
    level = event.get("level")
    if isinstance(level, str):
        event["level"] = level.lower()
    return event


def configure_logging(level: str = "info", *, json: bool = False) -> None:
    numeric = getattr(logging, level.upper(), logging.INFO)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[structlog.typing.Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _exception_type_only,
    ]
    handler = _CurrentStderr()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            # Records of other libraries (uvicorn, Alembic): their message as the event.
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _level_name,
                renderer,
            ],
        )
    )
    logging.basicConfig(level=numeric, handlers=[handler], force=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        # Not cached: a cached logger keeps the level of its first use, so a process that
        # configures logging again (the demo, the CLI run in-process, tests) would keep
        # the old level in every module logger. A few µs per line.
        cache_logger_on_first_use=False,
    )
