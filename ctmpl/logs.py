"""Logging setup: text or JSON lines on stderr, with a TRACE level below DEBUG.

Catalog data reaches log lines (a KV value in a template error, a bad config value): ``quote``
shortens a value before it is quoted, and every formatted message is capped at
``MAX_MESSAGE`` characters, so a 25 MB value is never echoed. JSON lines carry the traceback
of an unexpected error in a ``traceback`` field.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from ctmpl.config.model import LogFormat, LogLevel

TRACE = 5
MAX_QUOTE = 120  # characters of a quoted value
MAX_MESSAGE = 2000  # characters of one log message
logging.addLevelName(TRACE, "TRACE")

_LEVELS: dict[LogLevel, int] = {
    "trace": TRACE,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "err": logging.ERROR,
    "error": logging.ERROR,
}


def shorten(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


def quote(value: object, limit: int = MAX_QUOTE) -> str:
    """``repr(value)`` for a message, cut to ``limit`` characters."""
    if isinstance(value, str | bytes) and len(value) > limit:
        return f"{value[:limit]!r}… ({len(value)} characters)"
    return shorten(repr(value), limit)


def message(record: logging.LogRecord) -> str:
    """The record's message, capped at ``MAX_MESSAGE`` characters."""
    return shorten(record.getMessage())


class TextFormatter(logging.Formatter):
    """``time [LEVEL] message`` with the message capped; tracebacks follow as usual."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s [%(levelname)s] %(message)s", "%Y-%m-%dT%H:%M:%S%z")

    def formatMessage(self, record: logging.LogRecord) -> str:
        """Format with the capped message."""
        record.message = message(record)
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as a JSON line."""
        data = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": message(record),
        }
        if record.exc_info:
            data["traceback"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def setup(level: LogLevel = "info", fmt: LogFormat = "text") -> None:
    """Configure the root logger once (called again on reload with new settings)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(_LEVELS[level])
    # Third-party libraries log every inotify event and HTTP request at DEBUG.
    for noisy in ("watchdog", "asyncio", "aiohttp", "grpc"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
